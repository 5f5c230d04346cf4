"""Names of the pitch trackers (kept free of TensorFlow so the command line starts quickly)."""

TRACKERS = ("crepe-tiny", "crepe-full", "yin")
