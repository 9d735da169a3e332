// XChaCha20-Poly1305 (IETF) by OpenSSL, in the caller's memory (built by
// scripts/build-io.cjs at npm install; used by src/crypto/aead.ts for big
// messages). The same construction sodium's crypto_aead_xchacha20poly1305_ietf
// computes, byte for byte: ChaCha20-Poly1305 (RFC 8439) under the HChaCha20
// subkey of (key, nonce[0..16]) and the nonce 0^4 || nonce[16..24]
// (draft-irtf-cfrg-xchacha). Node carries OpenSSL and exports its symbols to
// addons; its AVX-512 code takes about 0.37 ms per MiB here against sodium's
// 0.58-0.60, and unlike node:crypto it writes into a given buffer (a fresh
// megabyte per block costs page faults on these VMs).
//   seal(sealed, plain, ad|null, key): sealed = nonce(24, filled by the
//     caller) | ciphertext | tag(16); sealed.length == plain.length + 40
//   open(plain, sealed, ad|null, key) -> boolean: false when the tag does not
//     match (plain is then zeroed); plain.length == sealed.length - 40
//   verify(sealed, ad|null, key) -> boolean: whether open would succeed,
//     decrypting through a small scratch buffer that is then wiped
// Arguments are any typed arrays (SharedArrayBuffer views too); lengths are
// checked, a mismatch throws. Each thread that loads the addon keeps its own
// cipher context.
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONCE 24
#define TAG 16
#define KEY 32

typedef struct {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *ctx;
} state;

static uint32_t load32 (const uint8_t *p) {
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static void store32 (uint8_t *p, uint32_t v) {
  p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); p[2] = (uint8_t) (v >> 16); p[3] = (uint8_t) (v >> 24);
}

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d) \
  x[a] += x[b]; x[d] ^= x[a]; x[d] = ROTL(x[d], 16); \
  x[c] += x[d]; x[b] ^= x[c]; x[b] = ROTL(x[b], 12); \
  x[a] += x[b]; x[d] ^= x[a]; x[d] = ROTL(x[d], 8); \
  x[c] += x[d]; x[b] ^= x[c]; x[b] = ROTL(x[b], 7)

static void hchacha20 (uint8_t out[KEY], const uint8_t key[KEY], const uint8_t nonce[16]) {
  uint32_t x[16] = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 };
  for (int i = 0; i < 8; i++) x[4 + i] = load32(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = load32(nonce + 4 * i);
  for (int i = 0; i < 10; i++) {
    QR(0, 4, 8, 12); QR(1, 5, 9, 13); QR(2, 6, 10, 14); QR(3, 7, 11, 15);
    QR(0, 5, 10, 15); QR(1, 6, 11, 12); QR(2, 7, 8, 13); QR(3, 4, 9, 14);
  }
  for (int i = 0; i < 4; i++) store32(out + 4 * i, x[i]);
  for (int i = 0; i < 4; i++) store32(out + 16 + 4 * i, x[12 + i]);
  memset(x, 0, sizeof x);
}

typedef struct {
  uint8_t *data;
  size_t length;
} bytes;

// A typed array's memory, or {NULL, 0} for null/undefined when `optional`.
static int get_bytes (napi_env env, napi_value v, bytes *out, int optional) {
  napi_valuetype t;
  if (optional && napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) {
    out->data = NULL;
    out->length = 0;
    return 1;
  }
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  size_t count, offset;
  void *data;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &count, &data, &ab, &offset) != napi_ok || type != napi_uint8_array) return 0;
  out->data = data;
  out->length = count;
  return 1;
}

static int args (napi_env env, napi_callback_info info, bytes b[4], state **st, const char *usage) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **) st) != napi_ok || argc < 4 ||
      !get_bytes(env, argv[0], &b[0], 0) || !get_bytes(env, argv[1], &b[1], 0) ||
      !get_bytes(env, argv[2], &b[2], 1) || !get_bytes(env, argv[3], &b[3], 0) ||
      b[3].length != KEY || b[0].length > INT32_MAX || b[1].length > INT32_MAX || b[2].length > INT32_MAX) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

// Keys the context for (subkey of key and nonce, ietf nonce) and feeds the ad.
static int begin (state *st, int enc, const uint8_t *key, const uint8_t *nonce, const bytes *ad) {
  uint8_t subkey[KEY], iv[12] = { 0 };
  int n, ok;
  hchacha20(subkey, key, nonce);
  memcpy(iv + 4, nonce + 16, 8);
  ok = EVP_CipherInit_ex2(st->ctx, st->cipher, subkey, iv, enc, NULL) == 1 &&
    (ad->length == 0 || EVP_CipherUpdate(st->ctx, NULL, &n, ad->data, (int) ad->length) == 1);
  memset(subkey, 0, sizeof subkey);
  return ok;
}

static napi_value aead_seal (napi_env env, napi_callback_info info) {
  bytes b[4];
  state *st;
  int n, m;
  if (!args(env, info, b, &st, "seal(sealed, plain, ad, key): Uint8Arrays, key of 32 bytes")) return NULL;
  bytes *sealed = &b[0], *plain = &b[1];
  if (sealed->length != plain->length + NONCE + TAG) {
    napi_throw_range_error(env, NULL, "seal: sealed must be plain.length + 40 bytes");
    return NULL;
  }
  uint8_t *ct = sealed->data + NONCE;
  if (!begin(st, 1, b[3].data, sealed->data, &b[2]) ||
      EVP_CipherUpdate(st->ctx, ct, &n, plain->data, (int) plain->length) != 1 ||
      EVP_CipherFinal_ex(st->ctx, ct + n, &m) != 1 ||
      EVP_CIPHER_CTX_ctrl(st->ctx, EVP_CTRL_AEAD_GET_TAG, TAG, ct + plain->length) != 1) {
    napi_throw_error(env, NULL, "seal: OpenSSL failed");
    return NULL;
  }
  return NULL;
}

static napi_value aead_open (napi_env env, napi_callback_info info) {
  bytes b[4];
  state *st;
  int n, m;
  napi_value result;
  if (!args(env, info, b, &st, "open(plain, sealed, ad, key): Uint8Arrays, key of 32 bytes")) return NULL;
  bytes *plain = &b[0], *sealed = &b[1];
  if (sealed->length != plain->length + NONCE + TAG) {
    napi_throw_range_error(env, NULL, "open: plain must be sealed.length - 40 bytes");
    return NULL;
  }
  const uint8_t *ct = sealed->data + NONCE;
  if (!begin(st, 0, b[3].data, sealed->data, &b[2]) ||
      EVP_CipherUpdate(st->ctx, plain->data, &n, ct, (int) plain->length) != 1 ||
      EVP_CIPHER_CTX_ctrl(st->ctx, EVP_CTRL_AEAD_SET_TAG, TAG, (void *) (ct + plain->length)) != 1) {
    napi_throw_error(env, NULL, "open: OpenSSL failed");
    return NULL;
  }
  int ok = EVP_CipherFinal_ex(st->ctx, plain->data + n, &m) == 1;
  if (!ok) memset(plain->data, 0, plain->length);
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value aead_verify (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  bytes sealed, ad, key;
  state *st;
  static __thread uint8_t scratch[64 * 1024];
  int n, m;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **) &st) != napi_ok || argc < 3 ||
      !get_bytes(env, argv[0], &sealed, 0) || !get_bytes(env, argv[1], &ad, 1) || !get_bytes(env, argv[2], &key, 0) ||
      key.length != KEY || sealed.length > INT32_MAX || ad.length > INT32_MAX) {
    napi_throw_type_error(env, NULL, "verify(sealed, ad, key): Uint8Arrays, key of 32 bytes");
    return NULL;
  }
  int ok = sealed.length >= NONCE + TAG && begin(st, 0, key.data, sealed.data, &ad);
  if (ok) {
    size_t length = sealed.length - NONCE - TAG;
    const uint8_t *ct = sealed.data + NONCE;
    for (size_t at = 0; ok && at < length; at += sizeof scratch) {
      size_t piece = length - at < sizeof scratch ? length - at : sizeof scratch;
      ok = EVP_CipherUpdate(st->ctx, scratch, &n, ct + at, (int) piece) == 1;
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(st->ctx, EVP_CTRL_AEAD_SET_TAG, TAG, (void *) (ct + length)) == 1 &&
      EVP_CipherFinal_ex(st->ctx, scratch, &m) == 1;
    memset(scratch, 0, sizeof scratch);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

static void cleanup (napi_env env, void *data, void *hint) {
  state *st = (state *) data;
  EVP_CIPHER_CTX_free(st->ctx);
  EVP_CIPHER_free(st->cipher);
  free(st);
}

NAPI_MODULE_INIT () {
  state *st = calloc(1, sizeof(state));
  if (st == NULL) return NULL;
  st->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  st->ctx = EVP_CIPHER_CTX_new();
  if (st->cipher == NULL || st->ctx == NULL) {
    cleanup(env, st, NULL);
    napi_throw_error(env, NULL, "OpenSSL has no ChaCha20-Poly1305");
    return NULL;
  }
  napi_set_instance_data(env, st, cleanup, NULL);
  napi_value fn;
  napi_create_function(env, "seal", NAPI_AUTO_LENGTH, aead_seal, st, &fn);
  napi_set_named_property(env, exports, "seal", fn);
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, aead_open, st, &fn);
  napi_set_named_property(env, exports, "open", fn);
  napi_create_function(env, "verify", NAPI_AUTO_LENGTH, aead_verify, st, &fn);
  napi_set_named_property(env, exports, "verify", fn);
  return exports;
}
