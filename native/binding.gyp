{
  "targets": [{
    "target_name": "io",
    "sources": ["io.c"],
    "cflags": ["-O2", "-Wall"]
  }, {
    "target_name": "aead",
    "sources": ["aead.c"],
    "cflags": ["-O2", "-Wall"]
  }]
}
