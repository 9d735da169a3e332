
/* disktro patch: directories' attributes held by the kernel (see scripts/build-fuse.cjs (k)) */
#include <dlfcn.h>
#include <sys/stat.h>
static double disktro_dir_attr_timeout = 0; /* seconds; set by JS before the mount */
static uint64_t disktro_dir_attr_held = 0; /* atomic: replies given it */
static int (*disktro_real_reply_attr) (fuse_req_t, const struct stat *, double);
static int (*disktro_real_reply_entry) (fuse_req_t, const struct fuse_entry_param *);

/* libfuse's own definition, under the version the high-level code binds to. */
static void *disktro_libfuse_fn (const char *name, const char *version) {
  void *f = NULL;
  void *h = dlopen("libfuse.so.2", RTLD_LAZY | RTLD_NOLOAD);
  if (h != NULL) {
    f = dlvsym(h, name, version);
    if (f == NULL) f = dlsym(h, name);
    dlclose(h);
  }
  if (f == NULL) f = dlvsym(RTLD_NEXT, name, version);
  if (f == NULL) f = dlsym(RTLD_NEXT, name);
  if (f == NULL) abort(); /* the addon is linked against libfuse: it is loaded */
  return f;
}

__attribute__((visibility("default"))) int fuse_reply_attr (fuse_req_t req, const struct stat *attr, double attr_timeout) {
  if (disktro_real_reply_attr == NULL) disktro_real_reply_attr = disktro_libfuse_fn("fuse_reply_attr", "FUSE_2.4");
  double held = disktro_dir_attr_timeout;
  if (attr != NULL && S_ISDIR(attr->st_mode) && held > attr_timeout) {
    attr_timeout = held;
    __atomic_add_fetch(&disktro_dir_attr_held, 1, __ATOMIC_RELAXED);
  }
  return disktro_real_reply_attr(req, attr, attr_timeout);
}

__attribute__((visibility("default"))) int fuse_reply_entry (fuse_req_t req, const struct fuse_entry_param *e) {
  if (disktro_real_reply_entry == NULL) disktro_real_reply_entry = disktro_libfuse_fn("fuse_reply_entry", "FUSE_2.4");
  double held = disktro_dir_attr_timeout;
  if (e != NULL && e->ino != 0 && S_ISDIR(e->attr.st_mode) && held > e->attr_timeout) {
    struct fuse_entry_param c = *e;
    c.attr_timeout = held;
    __atomic_add_fetch(&disktro_dir_attr_held, 1, __ATOMIC_RELAXED);
    return disktro_real_reply_entry(req, &c);
  }
  return disktro_real_reply_entry(req, e);
}

/* (seconds; a negative number leaves it) -> replies given the longer timeout so far */
NAPI_METHOD(fuse_native_dir_attr_timeout) {
  NAPI_ARGV(1)
  double seconds = 0;
  napi_get_value_double(env, argv[0], &seconds);
  if (seconds >= 0) disktro_dir_attr_timeout = seconds;
  napi_value out;
  napi_create_double(env, (double) __atomic_load_n(&disktro_dir_attr_held, __ATOMIC_RELAXED), &out);
  return out;
}
