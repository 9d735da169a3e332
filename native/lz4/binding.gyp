{
  "variables": {
    "lz4_dir": "<!(node ../../scripts/lz4-dir.cjs)"
  },
  "targets": [{
    "target_name": "lz4",
    "sources": ["lz4-block.c", "<(lz4_dir)/lz4.c"],
    "include_dirs": ["<(lz4_dir)"],
    "cflags": ["-O3", "-Wall"]
  }]
}
