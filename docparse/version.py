"""The docparse release, a leaf that every module may import (the package root imports the API lazily)."""

__version__ = "0.1.0"
