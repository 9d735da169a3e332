{
  "targets": [{
    "target_name": "io",
    "sources": ["io.c"],
    "cflags": ["-O2", "-Wall"]
  }]
}
