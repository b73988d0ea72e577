import pytest

from dymn.models.info import check_labels, default_labels
from dymn.models.labels import audioset_labels, audioset_names
from dymn.util.errors import WeightsError


def test_audioset_labels_ship_with_package():
    labels = audioset_labels()
    assert len(labels) == 527
    assert (labels[0].mid, labels[0].name) == ("/m/09x0r", "Speech")
    assert labels[526].name == "Field recording"
    assert "Railroad car, train wagon" in audioset_names()  # quoted names with commas


def test_default_and_checked_labels():
    assert check_labels(["a", "b"], 2, "x") == ("a", "b")
    assert default_labels(3) == ("class_0", "class_1", "class_2")
    assert default_labels(527)[0] == "Speech"


def test_wrong_label_count_is_an_error_not_placeholders():
    # finding 12: a label list that does not match the outputs used to be replaced by class_i silently
    with pytest.raises(WeightsError, match="3 labels for a model with 2 outputs"):
        check_labels(["a", "b", "c"], 2, "m.pt")
