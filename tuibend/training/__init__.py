"""Training: datasets of analysed 4-second examples, and the trainer."""
