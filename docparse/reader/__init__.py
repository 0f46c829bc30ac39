"""The reader: one raw QwenVL HTML answer in, typed document blocks in page space out (read_answer in qwenvl.py)."""
