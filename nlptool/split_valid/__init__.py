"""``nlptool split-valid``: a validation split that resembles the test set (adversarial validation)."""
