"""Files: frame sources (video files, frame folders) and outputs that appear whole or not at all.

Named ``files`` rather than ``io`` so it cannot be mistaken for the standard library's module.
"""
