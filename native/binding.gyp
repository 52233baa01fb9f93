{
  "variables": {
    "asan_flags": "<!(node -p \"process.env.CLIP_ASAN ? '-fsanitize=address -fno-omit-frame-pointer -g' : ''\")"
  },
  "targets": [
    {
      "target_name": "clip_zlib",
      "sources": ["clip_zlib.c", "clip_crc32.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "clip_digest",
      "sources": ["clip_digest.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "<@(asan_flags)"],
      "ldflags": ["<@(asan_flags)"]
    },
    {
      "target_name": "clip_memory",
      "sources": ["clip_memory.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "clip_fdpass",
      "sources": ["clip_fdpass.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "<@(asan_flags)"],
      "ldflags": ["<@(asan_flags)"]
    },
    {
      "target_name": "clip_fuse",
      "sources": ["clip_fuse.c", "clip_fuse_loop.c", "clip_fuse_table.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "<!@(pkg-config --cflags fuse3)", "<@(asan_flags)"],
      "ldflags": ["<@(asan_flags)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
