{
  "targets": [
    {
      "target_name": "clip_zlib",
      "sources": ["clip_zlib.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
