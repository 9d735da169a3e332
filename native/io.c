// disktro's own small native addon (built by scripts/build-io.cjs at npm
// install): the file-cache calls Node's fs does not offer.
//   dropCache(fd, offset, length) -> Promise<void>
//     posix_fadvise(POSIX_FADV_DONTNEED) on the range, on the thread pool:
//     the kernel drops the range's clean, unmapped page-cache pages (dirty
//     or mapped ones stay). Used as drop-behind for chunk replicas
//     (src/store/drop-behind.ts). Rejects with the errno's message.
//   keepHeap(topPad, mmapThreshold) -> boolean
//     mallopt(M_TOP_PAD) and mallopt(M_MMAP_THRESHOLD) (glibc): every malloc
//     arena keeps `topPad` bytes of freed memory instead of handing it back
//     to the kernel, and blocks under `mmapThreshold` come from the arenas,
//     not from a fresh mmap each (src/store/heap.ts). False where the C
//     library refuses (or is not glibc).
//   hugePages(view) -> number
//     madvise(MADV_HUGEPAGE) on the 2 MiB-aligned part of a Uint8Array's
//     memory (a SharedArrayBuffer's too): transparent huge pages where the
//     kernel offers them on request, so 2 MiB cost one page fault instead of
//     512 (src/store/heap.ts). The bytes advised; 0 where refused.
//   hugeMapping(start, length) -> number
//     The same for a mapping by its address and length (LMDB's map of its
//     data file, found in /proc/self/maps).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <fcntl.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int64_t offset;
  int64_t length;
  int err;
} drop_job;

static void drop_execute (napi_env env, void *data) {
  drop_job *job = (drop_job *) data;
  job->err = posix_fadvise(job->fd, (off_t) job->offset, (off_t) job->length, POSIX_FADV_DONTNEED);
}

static void drop_complete (napi_env env, napi_status status, void *data) {
  drop_job *job = (drop_job *) data;
  if (status == napi_ok && job->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, job->deferred, undef);
  } else {
    napi_value msg, error;
    napi_create_string_utf8(env, strerror(job->err ? job->err : EIO), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value drop_cache (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], promise, name;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "dropCache(fd, offset, length)");
    return NULL;
  }
  drop_job *job = calloc(1, sizeof(drop_job));
  if (job == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[0], &job->fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &job->offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &job->length) != napi_ok ||
      job->fd < 0 || job->offset < 0 || job->length < 0) {
    free(job);
    napi_throw_type_error(env, NULL, "dropCache(fd, offset, length): non-negative integers");
    return NULL;
  }
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "disktro.dropCache", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, drop_execute, drop_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static napi_value keep_heap (napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int64_t pad = -1, threshold = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int64(env, argv[0], &pad) != napi_ok ||
      napi_get_value_int64(env, argv[1], &threshold) != napi_ok ||
      pad < 0 || threshold < 0 || pad > INT32_MAX || threshold > INT32_MAX) {
    napi_throw_type_error(env, NULL, "keepHeap(topPad, mmapThreshold): non-negative 32-bit integers");
    return NULL;
  }
  int ok = 0;
#if defined(__GLIBC__)
  ok = mallopt(M_TOP_PAD, (int) pad) == 1 && mallopt(M_MMAP_THRESHOLD, (int) threshold) == 1;
#endif
  napi_get_boolean(env, ok, &result);
  return result;
}

#define HUGE_PAGE ((uintptr_t) 2 * 1024 * 1024)

static napi_value huge_pages (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  bool is_typed = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "hugePages(view): a Uint8Array");
    return NULL;
  }
  uintptr_t start = ((uintptr_t) data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t) data + length) & ~(HUGE_PAGE - 1);
  double advised = 0;
#if defined(MADV_HUGEPAGE)
  if (data != NULL && end > start && madvise((void *) start, end - start, MADV_HUGEPAGE) == 0) advised = (double) (end - start);
#endif
  napi_create_double(env, advised, &result);
  return result;
}

// hugeMapping(start, length) -> number: the same for a file mapping this
// process has, by its address (from /proc/self/maps: src/store/heap.ts).
static napi_value huge_mapping (napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  double at = 0, len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_double(env, argv[0], &at) != napi_ok ||
      napi_get_value_double(env, argv[1], &len) != napi_ok || at <= 0 || len <= 0) {
    napi_throw_type_error(env, NULL, "hugeMapping(start, length): positive numbers");
    return NULL;
  }
  uintptr_t start = ((uintptr_t) at + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t) at + (uintptr_t) len) & ~(HUGE_PAGE - 1);
  double advised = 0;
#if defined(MADV_HUGEPAGE)
  if (end > start && madvise((void *) start, end - start, MADV_HUGEPAGE) == 0) advised = (double) (end - start);
#endif
  napi_create_double(env, advised, &result);
  return result;
}

NAPI_MODULE_INIT () {
  napi_value fn;
  napi_create_function(env, "dropCache", NAPI_AUTO_LENGTH, drop_cache, NULL, &fn);
  napi_set_named_property(env, exports, "dropCache", fn);
  napi_create_function(env, "keepHeap", NAPI_AUTO_LENGTH, keep_heap, NULL, &fn);
  napi_set_named_property(env, exports, "keepHeap", fn);
  napi_create_function(env, "hugePages", NAPI_AUTO_LENGTH, huge_pages, NULL, &fn);
  napi_set_named_property(env, exports, "hugePages", fn);
  napi_create_function(env, "hugeMapping", NAPI_AUTO_LENGTH, huge_mapping, NULL, &fn);
  napi_set_named_property(env, exports, "hugeMapping", fn);
  return exports;
}
