"""fakereasoning: tell whether an image is AI-generated and explain why (FakeReasoning, arXiv 2503.21210)."""

__version__ = "0.1.0"
