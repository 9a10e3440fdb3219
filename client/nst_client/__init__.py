"""Client of the style-transfer server (requests and Pillow only; no torch)."""
