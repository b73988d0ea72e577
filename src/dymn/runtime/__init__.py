"""A network in, something that runs fast out: fusion, export, the converted-graph cache, one engine per backend,
the automatic choice (:mod:`.api` is the interface: ``compile``, ``optimize``, ``open_onnx``)."""
