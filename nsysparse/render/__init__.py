"""Renderers: a Report in, text or files out. Nothing here computes a metric."""
