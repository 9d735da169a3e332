
/* disktro patch: JS is told when the FUSE loop returns (see scripts/build-fuse.cjs (j)) */
#define DISKTRO_LOOP_END_MAX 16
static struct { void *owner; napi_threadsafe_function fn; } disktro_loop_end[DISKTRO_LOOP_END_MAX];
static uv_mutex_t disktro_loop_end_mut;
static uv_once_t disktro_loop_end_once = UV_ONCE_INIT;
static void disktro_loop_end_init (void) { uv_mutex_init(&disktro_loop_end_mut); }

static void disktro_loop_end_call (napi_env env, napi_value js_cb, void *context, void *data) {
  (void) context; (void) data;
  if (env == NULL || js_cb == NULL) return;
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, js_cb, 0, NULL, NULL);
}

/* The callback registered for this mount (its fuse_thread_t), taken out; NULL if none. */
static napi_threadsafe_function disktro_loop_end_take (void *owner) {
  napi_threadsafe_function fn = NULL;
  uv_once(&disktro_loop_end_once, disktro_loop_end_init);
  uv_mutex_lock(&disktro_loop_end_mut);
  for (int i = 0; i < DISKTRO_LOOP_END_MAX; i++) {
    if (disktro_loop_end[i].owner == owner && disktro_loop_end[i].fn != NULL) {
      fn = disktro_loop_end[i].fn;
      disktro_loop_end[i].fn = NULL;
      disktro_loop_end[i].owner = NULL;
      break;
    }
  }
  uv_mutex_unlock(&disktro_loop_end_mut);
  return fn;
}

/* (mount's _thread buffer, callback) -> whether registered: the callback is
   called once on the event loop after that mount's FUSE loop has returned */
NAPI_METHOD(fuse_native_on_loop_end) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER(owner, 0)
  napi_value name;
  napi_threadsafe_function tsfn;
  int ok = 0;
  napi_create_string_utf8(env, "disktro loop end", NAPI_AUTO_LENGTH, &name);
  if (owner_len > 0 && napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, disktro_loop_end_call, &tsfn) == napi_ok) {
    napi_unref_threadsafe_function(env, tsfn); /* never keeps the process alive */
    napi_threadsafe_function old = disktro_loop_end_take(owner);
    if (old != NULL) napi_release_threadsafe_function(old, napi_tsfn_release);
    uv_mutex_lock(&disktro_loop_end_mut);
    for (int i = 0; i < DISKTRO_LOOP_END_MAX && !ok; i++) {
      if (disktro_loop_end[i].fn == NULL) {
        disktro_loop_end[i].owner = owner;
        disktro_loop_end[i].fn = tsfn;
        ok = 1;
      }
    }
    uv_mutex_unlock(&disktro_loop_end_mut);
    if (!ok) napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

