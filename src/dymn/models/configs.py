"""Architecture options of the networks (MN, DyMN, the frame-level FrameMN): plain dataclasses, no torch, so
that checkpoints and registries can validate options without building anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

HEAD_TYPES = ("mlp", "fully_convolutional", "multihead_attention_pooling")

SE_AGGREGATIONS = ("max", "avg", "add", "min")
SE_AXES = {"c": 1, "f": 2, "t": 3}


@dataclass
class MNConfig:
    """Architecture options of MN, named as in the reference ``get_model``."""

    width_mult: float = 1.0
    num_classes: int = 527
    head_type: str = "mlp"
    multihead_attention_heads: int = 4
    se_dims: str = "c"
    se_agg: str = "max"
    se_r: int = 4
    strides: tuple[int, int, int, int] = field(default=(2, 2, 2, 2))
    input_dim_f: int = 128
    input_dim_t: int = 1000
    reduced_tail: bool = False
    dilated: bool = False

    def __post_init__(self) -> None:
        self.strides = tuple(int(s) for s in self.strides)  # type: ignore[assignment]
        if self.se_dims in (None, "", "none"):
            self.se_dims = "none"
        elif any(c not in SE_AXES for c in self.se_dims) or len(set(self.se_dims)) != len(self.se_dims):
            raise ValueError(f"se_dims must be letters from 'c', 'f', 't' or 'none', got {self.se_dims!r}")
        if self.se_agg not in SE_AGGREGATIONS:
            raise ValueError(f"se_agg must be one of {SE_AGGREGATIONS}, got {self.se_agg!r}")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {self.head_type!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        return d


DY_BLOCK_MODES = ("all", "replace_se")


@dataclass
class DyMNConfig:
    """Architecture options of DyMN, named as in the reference ``get_model``."""

    width_mult: float = 1.0
    num_classes: int = 527
    strides: tuple[int, int, int, int] = field(default=(2, 2, 2, 2))
    context_ratio: int = 4
    max_context_size: int = 128
    min_context_size: int = 32
    dyrelu_k: int = 2
    no_dyrelu: bool = False
    dyconv_k: int = 4
    no_dyconv: bool = False
    T_max: float = 30.0
    T_min: float = 1.0
    T0_slope: float = 1.0
    T1_slope: float = 0.02
    no_ca: bool = False
    use_dy_blocks: str = "all"
    head_type: str = "mlp"

    def __post_init__(self) -> None:
        self.strides = tuple(int(s) for s in self.strides)  # type: ignore[assignment]
        if self.use_dy_blocks not in DY_BLOCK_MODES:
            raise ValueError(f"use_dy_blocks must be one of {DY_BLOCK_MODES}, got {self.use_dy_blocks!r}")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {self.head_type!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.dyconv_k < 1 or self.dyrelu_k < 1:
            raise ValueError("dyconv_k and dyrelu_k must be at least 1")
        if self.T0_slope <= 0:
            raise ValueError("T0_slope must be positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        return d


SEQ_TYPES = ("tf", "gru", "hybrid")
SEQ_LEN = 250
# a frame-level detector's output frames: SEQ_LEN of them for a 10 s input (4 STFT hops of 10 ms each)
FRAME_SECONDS = 0.04
N_CLASSES = 447


@dataclass
class FrameMNConfig:
    width_mult: float = 1.0
    seq_model_type: str | None = None  # None, "tf", "gru" or "hybrid"
    seq_model_dim: int | None = None
    seq_model_layers: int = 2
    num_classes: int = N_CLASSES
    seq_len: int = SEQ_LEN

    def __post_init__(self) -> None:
        if self.seq_model_type not in (None, *SEQ_TYPES):
            raise ValueError(f"seq_model_type must be one of {SEQ_TYPES} or None, got {self.seq_model_type!r}")
        if self.seq_model_type is not None and not self.seq_model_dim:
            raise ValueError("a sequence model needs seq_model_dim")

    def to_dict(self) -> dict:
        return asdict(self)
