
/* disktro patch (p): the caller of each operation (scripts/build-fuse.cjs).
   The FUSE thread copies fuse_get_context()'s uid, gid and pid into its
   locals (FUSE_NATIVE_HANDLER); the event loop, right before it calls the
   JS handler, copies them into a buffer JS gave (fuse_native_caller). JS
   runs each handler's first part synchronously, so the buffer holds that
   operation's caller while it reads it: new nodes get their creator's owner
   (src/fuse/caller.ts). */
static uint32_t *disktro_caller = NULL;

static void disktro_caller_show (fuse_thread_locals_t *l) {
  if (disktro_caller == NULL) return;
  disktro_caller[0] = l->caller_uid;
  disktro_caller[1] = l->caller_gid;
  disktro_caller[2] = l->caller_pid;
}

/* (p): (buffer of at least 12 bytes, kept alive by JS for good) */
NAPI_METHOD(fuse_native_caller) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER(buf, 0)
  if (buf_len < 3 * sizeof(uint32_t)) return NULL;
  napi_ref keep; /* never released: the addon writes into it until exit */
  napi_create_reference(env, argv[0], 1, &keep);
  disktro_caller = (uint32_t *) buf;
  return NULL;
}

