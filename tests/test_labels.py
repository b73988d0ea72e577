from dymn.labels import audioset_labels, audioset_names, resolve_labels


def test_audioset_labels_ship_with_package():
    labels = audioset_labels()
    assert len(labels) == 527
    assert (labels[0].mid, labels[0].name) == ("/m/09x0r", "Speech")
    assert labels[526].name == "Field recording"
    assert "Railroad car, train wagon" in audioset_names()  # quoted names with commas


def test_resolve_labels():
    assert resolve_labels(["a", "b"], 2) == ["a", "b"]
    assert resolve_labels(None, 3) == ["class_0", "class_1", "class_2"]
    assert resolve_labels("audioset", 10) == [f"class_{i}" for i in range(10)]
