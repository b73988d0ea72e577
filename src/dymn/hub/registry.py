"""Registry of the released checkpoints: one :class:`PretrainedCfg` per name carries all it takes."""

from __future__ import annotations

import difflib
import fnmatch
import re

from ..audio.frontend import FrontendConfig
from ..models.pretrained import PretrainedCfg
from ..util.errors import UnknownModelError

PRETRAINED_SED_URL = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"
EFFICIENT_SED_URL = "https://github.com/theMoro/EfficientSED/releases/download/v0.0.1/"
# The frame-level SED models' input: 16 kHz, n_fft 512, symmetric Hann 400, hop 160, mels 0-7000 Hz, log(max(x, 1e-7))
SED_FRONTEND = FrontendConfig(sample_rate=16000, n_mels=128, win_length=400, hop_length=160, n_fft=512, log_floor=1e-7)


_REGISTRY: dict[str, PretrainedCfg] = {}

# Learnable parameter counts of the released layouts (527 classes, default heads).
_MN_PARAMS = {
    0.1: 123_783,
    0.2: 324_695,
    0.4: 983_599,
    0.5: 1_431_239,
    1.0: 4_876_831,
    2.0: 17_909_287,
    3.0: 39_086_367,
    4.0: 68_427_303,
}
_MN_FC_PARAMS = 3_478_638
_DYMN_PARAMS = {0.4: 1_961_239, 1.0: 10_548_479, 2.0: 39_966_143}
_DYMN_REPLACE_SE_PARAMS = {0.4: 1_829_287, 1.0: 9_833_935}
_MN_MACS = {0.1: 0.018, 0.2: 0.040, 0.4: 0.11, 0.5: 0.16, 1.0: 0.54, 2.0: 2.06, 3.0: 4.55, 4.0: 8.03}
_DYMN_MACS = {0.4: 0.12, 1.0: 0.58, 2.0: 2.2}
_WIDTH_TAG = {0.1: "01", 0.2: "02", 0.4: "04", 0.5: "05", 1.0: "10", 2.0: "20", 3.0: "30", 4.0: "40"}


def register(cfg: PretrainedCfg) -> PretrainedCfg:
    if cfg.name in _REGISTRY:
        raise ValueError(f"duplicate registry name {cfg.name}")
    _REGISTRY[cfg.name] = cfg
    return cfg


def _mn(name, filename, width, mAP=None, *, head="mlp", strides=(2, 2, 2, 2), hop=320, n_mels=128, **kw):
    arch = {"width_mult": width}
    if head != "mlp":
        arch["head_type"] = head
    if tuple(strides) != (2, 2, 2, 2):
        arch["strides"] = tuple(strides)
    params = _MN_FC_PARAMS if head == "fully_convolutional" else _MN_PARAMS[width]
    kw.setdefault("macs_g", _MN_MACS[width] if (hop, n_mels, head) == (320, 128, "mlp") else None)
    register(
        PretrainedCfg(
            name,
            "mn",
            arch,
            FrontendConfig(hop_length=hop, n_mels=n_mels),
            filename,
            map=mAP,
            params=params,
            **kw,
        )
    )


def _dymn(name, filename, width, mAP=None, *, replace_se=False, **kw):
    arch = {"width_mult": width}
    if replace_se:
        arch["use_dy_blocks"] = "replace_se"
    params = (_DYMN_REPLACE_SE_PARAMS if replace_se else _DYMN_PARAMS)[width]
    kw.setdefault("macs_g", None if replace_se else _DYMN_MACS[width])
    register(PretrainedCfg(name, "dymn", arch, FrontendConfig(), filename, map=mAP, params=params, **kw))


# --- MN ---------------------------------------------------------------------------------------------
_IM_NOTE = "ImageNet initialisation for AudioSet training; the classifier is random"
_mn("mn10_im_pytorch", "mn10_im_pytorch.pt", 1.0, tagger=False, notes="torchvision " + _IM_NOTE)
for _w, _tag in _WIDTH_TAG.items():
    _mn(f"mn{_tag}_im", f"mn{_tag}_im.pt", _w, tagger=False, notes=_IM_NOTE)
_mn(
    "mn04_as",
    "mn04_as_mAP_432.pt",
    0.4,
    43.2,
    sha256="899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
)
for _w, _file, _map in [
    (0.1, "mn01_as_mAP_298.pt", 29.8),
    (0.2, "mn02_as_mAP_378.pt", 37.8),
    (0.5, "mn05_as_mAP_443.pt", 44.3),
    (1.0, "mn10_as_mAP_471.pt", 47.1),
    (2.0, "mn20_as_mAP_478.pt", 47.8),
    (3.0, "mn30_as_mAP_482.pt", 48.2),
    (4.0, "mn40_as_mAP_484.pt", 48.4),
]:
    _mn(f"mn{_WIDTH_TAG[_w]}_as", _file, _w, _map)
for _name, _file, _map in [
    ("mn40_as(2)", "mn40_as_mAP_483.pt", 48.3),
    ("mn40_as(3)", "mn40_as_mAP_483(2).pt", 48.3),
    ("mn40_as_no_im_pre", "mn40_as_no_im_pre_mAP_483.pt", 48.3),
    ("mn40_as_no_im_pre(2)", "mn40_as_no_im_pre_mAP_483(2).pt", 48.3),
    ("mn40_as_no_im_pre(3)", "mn40_as_no_im_pre_mAP_482.pt", 48.2),
    ("mn40_as_ext", "mn40_as_ext_mAP_487.pt", 48.7),
    ("mn40_as_ext(2)", "mn40_as_ext_mAP_486.pt", 48.6),
    ("mn40_as_ext(3)", "mn40_as_ext_mAP_485.pt", 48.5),
]:
    _mn(_name, _file, 4.0, _map)
for _hop, _map, _macs in [(5, 47.5, 1.07), (15, 46.3, 0.36), (20, 45.6, 0.27), (25, 44.7, 0.22)]:
    _mn(f"mn10_as_hop_{_hop}", f"mn10_as_hop_{_hop}_mAP_{round(_map * 10)}.pt", 1.0, _map,
        hop=_hop * 32, macs_g=_macs)  # fmt: skip
for _mels, _map, _macs in [(40, 45.3, 0.21), (64, 46.1, 0.27), (256, 47.4, 1.08)]:
    _mn(f"mn10_as_mels_{_mels}", f"mn10_as_mels_{_mels}_mAP_{round(_map * 10)}.pt", 1.0, _map,
        n_mels=_mels, macs_g=_macs)  # fmt: skip
_FC_NOTE = "stride tuple inferred from the name"
_mn("mn10_as_fc", "mn10_as_fc_mAP_465.pt", 1.0, 46.5, head="fully_convolutional", macs_g=0.60)
_mn("mn10_as_fc_s2221", "mn10_as_fc_s2221_mAP_466.pt", 1.0, 46.6, head="fully_convolutional",
    strides=(2, 2, 2, 1), macs_g=1.15, notes=_FC_NOTE)  # fmt: skip
_mn("mn10_as_fc_s2211", "mn10_as_fc_s2211_mAP_466.pt", 1.0, 46.6, head="fully_convolutional",
    strides=(2, 2, 1, 1), macs_g=3.98, notes=_FC_NOTE)  # fmt: skip

# --- DyMN -------------------------------------------------------------------------------------------
for _w in (0.4, 1.0, 2.0):
    _tag = _WIDTH_TAG[_w]
    _dymn(f"dymn{_tag}_im", f"dymn{_tag}_im.pt", _w, temperature=None, tagger=False, notes=_IM_NOTE)
_dymn("dymn04_as", "dymn04_as.pt", 0.4, 45.0, notes="DyMN-S")
_dymn("dymn10_as", "dymn10_as.pt", 1.0, 47.7, notes="DyMN-M")
_dymn("dymn20_as", "dymn20_as_mAP_493.pt", 2.0, 49.3, notes="DyMN-L; the README lists 49.1")
_dymn("dymn20_as(1)", "dymn20_as.pt", 2.0, 49.1, notes="the earlier default dymn20_as file")
_dymn("dymn20_as(2)", "dymn20_as_mAP_489.pt", 2.0, 48.9)
_dymn("dymn20_as(3)", "dymn20_as_mAP_490.pt", 2.0, 49.0)
_dymn("dymn04_replace_se_as", "dymn04_replace_se_as.pt", 0.4, replace_se=True, notes="mAP not published")
_dymn("dymn10_replace_se_as", "dymn10_replace_se_as.pt", 1.0, replace_se=True,
      notes="mAP not published; the reference URL has a stray leading space")  # fmt: skip


# --- frame-level SED (PretrainedSED, EfficientSED): 447 AudioSet-Strong classes, 40 ms frames -------------
def _fmn(name, filename, width, params, psds1=None, seq=None, dim=None, base=EFFICIENT_SED_URL, notes=""):
    arch = {"width_mult": width}
    if seq:
        arch.update(seq_model_type=seq, seq_model_dim=dim)
    register(PretrainedCfg(name, "fmn", arch, SED_FRONTEND, filename, labels="audioset_strong", num_classes=447,
                           params=params, temperature=None, base_url=base, psds1=psds1, notes=notes))  # fmt: skip


_fmn("frame_mn06", "frame_mn06_strong_1.pt", 0.6, 1_615_022, base=PRETRAINED_SED_URL, notes="PretrainedSED")
_fmn("frame_mn10", "frame_mn10_strong_1.pt", 1.0, 3_830_798, base=PRETRAINED_SED_URL, notes="PretrainedSED")
for _w, _params, _psds in [(0.4, 860_318, 39.52), (0.6, 1_615_022, 40.75), (1.0, 3_830_798, 42.28),
                           (2.0, 13_359_254, 43.86), (3.0, 28_574_734, 44.24)]:  # fmt: skip
    _fmn(f"fmn{_WIDTH_TAG.get(_w, '06')}", f"fmn{_WIDTH_TAG.get(_w, '06')}_strong.pt", _w, _params, _psds)
# (width, sequence model, dim, parameters (the tf ones include their fixed rotary frequencies), PSDS1)
for _w, _seq, _dim, _params, _psds in [
    (1.0, "tf", 128, 3_607_214, 42.75), (1.0, "tf", 256, 5_028_286, 43.86), (1.0, "tf", 512, 10_229_726, 44.11),
    (1.0, "tf", 1024, 30_069_790, 44.55), (1.0, "hybrid", 128, 3_801_806, 43.45),
    (1.0, "hybrid", 256, 5_810_702, 44.05), (1.0, "hybrid", 512, 13_367_438, 44.32),
    (1.0, "hybrid", 1024, 42_636_686, 44.48), (1.0, "gru", 128, 4_334_990, 43.13), (1.0, "gru", 256, 6_483_854, 43.53),
    (1.0, "gru", 512, 13_140_878, 43.96), (1.0, "gru", 1024, 35_892_110, 44.50), (0.4, "tf", 104, 912_048, 40.10),
    (0.4, "hybrid", 104, 1_041_026, 41.37), (0.4, "gru", 104, 1_204_670, 40.81), (0.6, "tf", 160, 1_954_834, 41.78),
    (0.6, "hybrid", 160, 2_259_518, 42.54), (0.6, "gru", 160, 2_557_358, 40.37), (2.0, "tf", 512, 19_391_462, 45.13),
    (2.0, "hybrid", 512, 22_529_174, 45.44), (2.0, "gru", 512, 24_760_214, 44.94),
    (3.0, "tf", 768, 43_078_910, 45.64), (3.0, "hybrid", 768, 50_144_782, 45.67), (3.0, "gru", 768, 54_818_446, 45.77),
]:  # fmt: skip
    _t = _WIDTH_TAG.get(_w, "06")
    _fmn(f"fmn{_t}_{_seq}{_dim}", f"fmn{_t}+{_seq}-{_dim}_strong.pt", _w, _params, _psds, _seq, _dim,
         notes="layout derived: the reference cannot build it (hybrid below 128)" if _dim < 128 and _seq == "hybrid"
         else "")  # fmt: skip
_fmn(
    "fmn10_tf256_advkd",
    "fmn10+tf-256_advanced-kd-weak-strong.pt",
    1.0,
    5_028_286,
    45.25,
    "tf",
    256,
    notes="advanced KD (weak and strong teachers)",
)


def _canonical(name: str) -> str:
    # "mn40_as_2" and "mn40_as(2)" name the same run (parentheses are awkward on a command line)
    for base in _REGISTRY:
        if "(" in base and name == base.replace("(", "_").rstrip(")"):
            return base
    return name


def is_registered(name: str) -> bool:
    return _canonical(name) in _REGISTRY


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The registry entry for ``name`` (``mn40_as(2)`` may also be written ``mn40_as_2``)."""
    key = _canonical(name)
    if key not in _REGISTRY:
        close = suggest(name)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `dymn models` lists them"
        raise UnknownModelError(f"unknown model name {name!r}{hint}")
    return _REGISTRY[key]


def suggest(name: str, n: int = 4) -> list[str]:
    """Registered names close to ``name``: prefix matches (``mn4`` -> ``mn04_as``, ``mn40_as``) first,
    taggers before ImageNet initialisations, then spelling neighbours."""
    variants = {name.lower()}
    m = re.match(r"^([a-z]+)(\d)(?!\d)(.*)$", name.lower())
    if m:  # a width written with one digit: mn4 -> mn04 or mn40
        variants |= {f"{m[1]}0{m[2]}{m[3]}", f"{m[1]}{m[2]}0{m[3]}"}
    hits = [k for k in _REGISTRY if any(k.startswith(v) for v in variants)]
    hits.sort(key=lambda k: (not _REGISTRY[k].tagger, "(" in k, len(k), k))
    for k in difflib.get_close_matches(name, list(_REGISTRY), n=n, cutoff=0.6):
        if k not in hits:
            hits.append(k)
    return hits[:n]


def list_models(pattern: str | None = None, taggers_only: bool = False) -> list[str]:
    """Registered names, optionally filtered by a shell-style pattern (``"dymn*"``, ``"*_as"``)."""
    names = list(_REGISTRY)
    if pattern:
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"  # a plain word matches anywhere in the name
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if taggers_only:
        names = [n for n in names if _REGISTRY[n].tagger]
    return names
