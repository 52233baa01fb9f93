{
  "targets": [
    {
      "target_name": "clip_zlib",
      "sources": ["clip_zlib.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "clip_memory",
      "sources": ["clip_memory.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
