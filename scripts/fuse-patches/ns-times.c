
/* disktro patch (q): nanosecond times (scripts/build-fuse.cjs). A stat
   array from JS may carry two more uint32s after fuse-native's 18: the
   nanoseconds past the millisecond of atime and of mtime. */
static void disktro_stat_ns (uint32_t *ints, size_t len, struct stat *st) {
  if (len < 20 * sizeof(uint32_t) || ints[18] > 999999 || ints[19] > 999999) return;
  st->st_atim.tv_nsec += ints[18];
  st->st_mtim.tv_nsec += ints[19];
}

/* (q): 1 when the addon takes stat arrays with nanoseconds and gives
   utimens times with them (high bits 44-63: the nanoseconds past the ms) */
NAPI_METHOD(fuse_native_ns_times) {
  NAPI_RETURN_UINT32(1)
}

