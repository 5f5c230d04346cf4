"""The terminal instrument: a Textual interface over the engine (the engine never imports it)."""
