"""Audio in, log-mels out: decoding (:mod:`.io`) and the mel frontend (:mod:`.frontend`)."""
