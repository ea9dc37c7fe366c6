"""nlptool: command-line NLP tools built from techniques in Su Jianlin's blog (kexue.fm)."""

__version__ = "0.1.0"
