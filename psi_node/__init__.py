"""The Kruispunt partner node: holds one organisation's client list and its round keys."""
