"""docparse: PDFs and images to HTML, Markdown or JSON through Qwen2.5-VL's QwenVL HTML."""

__version__ = "0.1.0"
