"""Leaf helpers that import nothing else of dymn: errors, atomic writes, the cache folder, timing, the C allocator,
Ray."""
