/* The strict MST node decoder (spec-repository.md, "MST Structure"): atcore.mst.node's
 * decode_fields, in C because a relay decodes every node of every #commit's proof; and the key
 * rules it applies (is_valid_key, key_height), which atcore.mst.node uses for every key. Key
 * heights hash with hashlib.sha256 (OpenSSL), called through the C API.
 *
 * A node is strict DAG-CBOR of a fixed schema, so its canonical encoding is the only one
 * accepted: {"e": [{"k": bytes, "p": uint, "t": link|null, "v": link}, ...], "l": link|null},
 * keys in canonical order, every head minimal, nothing after the node. The parser reads exactly
 * that byte layout, so the entry offsets it returns are where the encoder puts them. Tree links
 * (`t`, `l`) must be dag-cbor sha2-256 CIDv1s, record values the same or raw-codec ones (what
 * atcore.cbor accepts; atcore.mst.node_py is this decoder on top of it). Keys are rebuilt
 * from their shared prefixes, must sort strictly, use the maximal prefix, be valid repo paths
 * and share one height (leading zero bits of their SHA-256 in 2-bit steps).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_KEY_LENGTH 1024
/* Honest keys give ~4 entries per node; a run of 512 same-height keys has odds below 1e-60,
 * so anything longer is a mined tree meant to amplify work (spec "Security Considerations"). */
#define MAX_ENTRIES 512
#define CID_LEN 36 /* CIDv1 dag-cbor sha2-256: 01 71 12 20 + 32-byte digest */

static PyObject *InvalidMst;

/* --- key heights ------------------------------------------------------------------------ */

/* hashlib.sha256 (OpenSSL's) and the name of its digest method, set at import. */
static PyObject *sha256_new, *digest_name;

/* Leading zero bits of SHA-256(key), counted in 2-bit chunks (fanout 4); -1 with Python's
 * error set when hashing fails. `key` is any buffer hashlib takes. */
static int key_height(PyObject *key)
{
    PyObject *hash = PyObject_CallOneArg(sha256_new, key);
    if (hash == NULL)
        return -1;
    PyObject *digest = PyObject_CallMethodNoArgs(hash, digest_name);
    Py_DECREF(hash);
    if (digest == NULL)
        return -1;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(digest);
    int zeros = 0;
    for (int i = 0; i < 32 && d[i] == 0; i++)
        zeros += 8;
    if (zeros < 256)
        zeros += __builtin_clz((unsigned)d[zeros / 8]) - 24;
    Py_DECREF(digest);
    return zeros / 2;
}

/* --- keys ------------------------------------------------------------------------------ */

static int path_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '~' || c == '-';
}

/* A repo path: `collection/rkey`, both non-empty, repo-path characters, rkey not "." or "..". */
static int valid_key(const unsigned char *key, size_t len)
{
    size_t slash = 0;
    while (slash < len && path_char(key[slash]))
        slash++;
    if (slash == 0 || slash >= len - 1 || key[slash] != '/')
        return 0;
    for (size_t i = slash + 1; i < len; i++)
        if (!path_char(key[i]))
            return 0;
    size_t rkey = len - slash - 1;
    const unsigned char *r = key + slash + 1;
    return !((rkey == 1 && r[0] == '.') || (rkey == 2 && r[0] == '.' && r[1] == '.'));
}

/* --- CBOR heads and links ---------------------------------------------------------------- */

typedef struct {
    const unsigned char *start, *at, *end;
    const char *error; /* why parsing stopped; NULL while it goes on */
} Reader;

static int fail(Reader *r, const char *why)
{
    if (r->error == NULL)
        r->error = why;
    return -1;
}

/* Expect exactly these bytes next. */
static int expect(Reader *r, const char *bytes, Py_ssize_t n, const char *why)
{
    if (r->end - r->at < n || memcmp(r->at, bytes, (size_t)n) != 0)
        return fail(r, why);
    r->at += n;
    return 0;
}

/* A head of `major` type with a minimally encoded argument of at most 32 bits. */
static int head(Reader *r, int major, uint32_t *out, const char *why)
{
    if (r->at >= r->end || (*r->at >> 5) != major)
        return fail(r, why);
    unsigned info = *r->at++ & 31;
    if (info < 24) {
        *out = info;
        return 0;
    }
    int size = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : 0;
    if (size == 0 || r->end - r->at < size)
        return fail(r, info == 27 ? "MST node holds an integer beyond 32 bits"
                                  : "MST node is not strict DAG-CBOR: bad item head");
    uint32_t v = 0;
    for (int i = 0; i < size; i++)
        v = v << 8 | *r->at++;
    uint32_t least = size == 1 ? 24 : size == 2 ? 0x100 : 0x10000;
    if (v < least)
        return fail(r, "MST node is not strict DAG-CBOR: integer not minimally encoded");
    *out = v;
    return 0;
}

/* A tree link: null, or tag 42 over 0x00 + a dag-cbor sha2-256 CIDv1. New reference or None. */
static PyObject *tree_link(Reader *r, const char *what)
{
    if (r->at < r->end && *r->at == 0xf6) {
        r->at++;
        Py_RETURN_NONE;
    }
    static const unsigned char prefix[] = {0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x71, 0x12, 0x20};
    if (r->end - r->at < 5 + CID_LEN || memcmp(r->at, prefix, sizeof prefix) != 0) {
        fail(r, what);
        return NULL;
    }
    PyObject *link = PyBytes_FromStringAndSize((const char *)r->at + 5, CID_LEN);
    r->at += 5 + CID_LEN;
    return link;
}

/* A record value: tag 42 over 0x00 + a CIDv1 sha2-256 with the dag-cbor or raw codec (the
 * CIDs atcore.cbor accepts anywhere). New reference. */
static PyObject *value_link(Reader *r)
{
    static const unsigned char prefix[] = {0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01};
    const unsigned char *at = r->at;
    if (r->end - at < 5 + CID_LEN || memcmp(at, prefix, sizeof prefix) != 0 ||
        (at[6] != 0x71 && at[6] != 0x55) || at[7] != 0x12 || at[8] != 0x20) {
        fail(r, "MST entry value is not a CIDv1 sha2-256 dag-cbor or raw link");
        return NULL;
    }
    PyObject *value = PyBytes_FromStringAndSize((const char *)at + 5, CID_LEN);
    r->at += 5 + CID_LEN;
    return value;
}

/* --- the node ---------------------------------------------------------------------------- */

static PyObject *invalid(const char *message)
{
    PyErr_SetString(InvalidMst, message);
    return NULL;
}

static PyObject *decode_fields(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Reader r = {view.buf, view.buf, (const unsigned char *)view.buf + view.len, NULL};
    PyObject *keys = NULL, *vals = NULL, *links = NULL, *offsets = NULL, *result = NULL;
    PyObject *prev = NULL; /* borrowed: the previous key */
    int height = -1;
    uint32_t count;
    char detail[160];

    if (expect(&r, "\xa2\x61\x65", 3, "MST node must be a map with exactly the fields e and l") <
            0 ||
        head(&r, 4, &count, "MST node field e must be an array") < 0)
        goto bad;
    if (count > MAX_ENTRIES) {
        snprintf(detail, sizeof detail, "MST node has %u entries (limit %d)", count, MAX_ENTRIES);
        r.error = detail;
        goto bad;
    }
    keys = PyTuple_New(count);
    vals = PyTuple_New(count);
    links = PyTuple_New(count + 1);
    offsets = PyTuple_New(count + 1);
    if (keys == NULL || vals == NULL || links == NULL || offsets == NULL)
        goto error;
    for (uint32_t i = 0; i <= count; i++) {
        PyObject *offset = PyLong_FromSsize_t(r.at - r.start);
        if (offset == NULL)
            goto error;
        PyTuple_SET_ITEM(offsets, i, offset);
        if (i == count)
            break;
        const char *shape = "MST entry must be a map with exactly the fields k, p, t and v";
        const char *types = "MST entry field types must be p: int, k: bytes, v: CID link";
        uint32_t suffix_len, p;
        if (expect(&r, "\xa4\x61k", 3, shape) < 0 || head(&r, 2, &suffix_len, types) < 0)
            goto bad;
        if ((size_t)(r.end - r.at) < suffix_len) {
            r.error = "MST node is not strict DAG-CBOR: truncated key";
            goto bad;
        }
        const unsigned char *suffix = r.at;
        r.at += suffix_len;
        if (expect(&r, "\x61p", 2, shape) < 0 || head(&r, 0, &p, types) < 0 ||
            expect(&r, "\x61t", 2, shape) < 0)
            goto bad;
        PyObject *right = tree_link(&r, "MST right link is not a dag-cbor sha2-256 CIDv1");
        if (right == NULL)
            goto fault;
        PyTuple_SET_ITEM(links, i + 1, right);
        if (expect(&r, "\x61v", 2, shape) < 0)
            goto bad;
        PyObject *value = value_link(&r);
        if (value == NULL)
            goto fault;
        PyTuple_SET_ITEM(vals, i, value);

        Py_ssize_t prev_len = prev == NULL ? 0 : PyBytes_GET_SIZE(prev);
        const unsigned char *prev_bytes =
            prev == NULL ? (const unsigned char *)"" : (const unsigned char *)PyBytes_AS_STRING(prev);
        if (p > prev_len) {
            snprintf(detail, sizeof detail, "MST entry prefix length %u exceeds the previous key",
                     p);
            r.error = detail;
            goto bad;
        }
        if ((size_t)p + suffix_len > MAX_KEY_LENGTH) {
            r.error = "invalid MST key in node: longer than 1024 bytes";
            goto bad;
        }
        /* Maximal prefix: the suffix must not start with the previous key's next byte. */
        if (p < prev_len && suffix_len > 0 && suffix[0] == prev_bytes[p]) {
            r.error = "MST entry does not use the maximal shared prefix";
            goto bad;
        }
        PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)p + suffix_len);
        if (key == NULL)
            goto error;
        unsigned char *k = (unsigned char *)PyBytes_AS_STRING(key);
        memcpy(k, prev_bytes, p);
        memcpy(k + p, suffix, suffix_len);
        PyTuple_SET_ITEM(keys, i, key);
        size_t key_len = (size_t)p + suffix_len;
        /* Shares p bytes with the previous key, so the next byte decides the order. */
        if (prev != NULL && (suffix_len == 0 || (p < prev_len && suffix[0] < prev_bytes[p]))) {
            r.error = "MST keys out of order";
            goto bad;
        }
        if (!valid_key(k, key_len)) {
            r.error = "invalid MST key in node";
            goto bad;
        }
        int h = key_height(key);
        if (h < 0)
            goto error;
        if (height >= 0 && h != height) {
            r.error = "MST keys of different heights in one node";
            goto bad;
        }
        height = h;
        prev = key;
    }
    PyObject *left = NULL;
    if (expect(&r, "\x61l", 2, "MST node must be a map with exactly the fields e and l") < 0 ||
        (left = tree_link(&r, "MST left link is not a dag-cbor sha2-256 CIDv1")) == NULL)
        goto fault;
    PyTuple_SET_ITEM(links, 0, left);
    if (r.at != r.end) {
        r.error = "MST node is not strict DAG-CBOR: trailing bytes";
        goto bad;
    }
    PyObject *fields = PyTuple_Pack(3, keys, vals, links);
    if (fields == NULL)
        goto error;
    if (height < 0)
        result = Py_BuildValue("(NOO)", fields, Py_None, offsets);
    else
        result = Py_BuildValue("(NiO)", fields, height, offsets);
    goto error;

fault: /* a helper set r.error, or Python's error is pending */
    if (PyErr_Occurred())
        goto error;
bad:
    invalid(r.error);
error:
    /* Tuples not yet filled hold NULLs, which their deallocation skips. */
    Py_XDECREF(keys);
    Py_XDECREF(vals);
    Py_XDECREF(links);
    Py_XDECREF(offsets);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(decode_fields_doc,
             "decode_fields(data) -> ((keys, values, links), height, offsets)\n\n"
             "Decode one node, rejecting anything but the exact schema and a sorted, same-height\n"
             "layout (InvalidMst); returns its fields (keys, binary value CIDs, then the left\n"
             "link and each entry's right link, None when absent), its keys' height (None for a\n"
             "node without entries) and where each entry's encoding starts, then the `l` field.\n"
             "Height against the node's position, and emptiness rules, are the tree walkers'.");

/* The key rules for callers outside a node (atcore.mst.node's check_key and key_height). */
static PyObject *py_is_valid_key(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int ok = view.len <= MAX_KEY_LENGTH && valid_key(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyObject *py_key_height(PyObject *Py_UNUSED(module), PyObject *arg)
{
    int height = key_height(arg);
    return height < 0 ? NULL : PyLong_FromLong(height);
}

PyDoc_STRVAR(is_valid_key_doc,
             "is_valid_key(key) -> bool\n\n"
             "True when `key` (bytes) is a repo path `collection/rkey` of at most 1024 bytes:\n"
             "repo-path characters, both parts non-empty, the record key not . or ..");

PyDoc_STRVAR(key_height_doc, "key_height(key) -> int\n\n"
                             "Leading zero bits of SHA-256(key), counted in 2-bit chunks.");

static PyMethodDef methods[] = {
    {"decode_fields", decode_fields, METH_O, decode_fields_doc},
    {"is_valid_key", py_is_valid_key, METH_O, is_valid_key_doc},
    {"key_height", py_key_height, METH_O, key_height_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "atcore.mst._node",
    .m_doc = "The strict MST node decoder, the key rules and the bounds it enforces.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__node(void)
{
    PyObject *errors = PyImport_ImportModule("atcore.errors");
    if (errors == NULL)
        return NULL;
    InvalidMst = PyObject_GetAttrString(errors, "InvalidMst");
    Py_DECREF(errors);
    if (InvalidMst == NULL)
        return NULL;
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL)
        return NULL;
    sha256_new = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    digest_name = PyUnicode_InternFromString("digest");
    if (sha256_new == NULL || digest_name == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL || PyModule_AddIntConstant(module, "MAX_KEY_LENGTH", MAX_KEY_LENGTH) < 0 ||
        PyModule_AddIntConstant(module, "MAX_ENTRIES", MAX_ENTRIES) < 0) {
        Py_XDECREF(module);
        return NULL;
    }
    return module;
}
