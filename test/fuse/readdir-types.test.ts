// A listing carries each entry's type and inode number (d_type, d_ino), as
// readdir(3) shows them to a child process: find, fts (du) and git's
// untracked-file scan decide from d_type whether to stat a name at all.
import t from 'tap'
import { Mount, requireFuse } from '../helpers/disktro.js'
import { sh, q, run, hasTool, daemonErrors } from './posix-helpers.js'

// readdir(3) through ctypes (glibc's struct dirent on 64-bit Linux: d_ino,
// d_off, d_reclen, d_type, d_name): "name type ino" per entry, then
// "name lstat-type lstat-ino" from lstat, so the test compares the two.
const PY = String.raw`
import ctypes, os, stat, sys
class D(ctypes.Structure):
    _fields_ = [('ino', ctypes.c_uint64), ('off', ctypes.c_int64), ('reclen', ctypes.c_ushort), ('type', ctypes.c_ubyte), ('name', ctypes.c_char * 256)]
libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.readdir.restype = ctypes.POINTER(D)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
d = libc.opendir(sys.argv[1].encode())
assert d, 'opendir failed'
while True:
    e = libc.readdir(d)
    if not e: break
    name = e.contents.name.decode()
    print('dirent', name, e.contents.type, e.contents.ino)
libc.closedir(d)
for name in sorted(os.listdir(sys.argv[1])):
    s = os.lstat(os.path.join(sys.argv[1], name))
    print('lstat', name, stat.S_IFMT(s.st_mode) >> 12, s.st_ino)
`

t.test('readdir gives each entry its type and inode number', { skip: !await hasTool('python3') && 'python3 not installed' }, async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const d = m.path('d')
  await sh(`mkdir ${q(d)} && mkdir ${q(d + '/sub')} && echo x > ${q(d + '/file')} && ln -s file ${q(d + '/link')} && mkfifo ${q(d + '/fifo')} && ln ${q(d + '/file')} ${q(d + '/hard')}`)
  const r = await run('python3', ['-c', PY, d])
  t.equal(r.code, 0, `python ran: ${r.stderr}`)
  const dirents = new Map<string, string>()
  const lstats = new Map<string, string>()
  for (const line of r.stdout.trim().split('\n')) {
    const [kind, name, type, ino] = line.split(' ')
    ;(kind === 'dirent' ? dirents : lstats).set(name, `${type} ${ino}`)
  }
  t.same([...dirents.keys()].sort(), ['.', '..', 'fifo', 'file', 'hard', 'link', 'sub'], 'every name listed')
  // DT_DIR 4, DT_REG 8, DT_LNK 10, DT_FIFO 1: the S_IFMT bits >> 12, as lstat has them
  t.equal(dirents.get('sub')?.split(' ')[0], '4', 'a directory is DT_DIR')
  t.equal(dirents.get('file')?.split(' ')[0], '8', 'a file is DT_REG')
  t.equal(dirents.get('link')?.split(' ')[0], '10', 'a symlink is DT_LNK')
  t.equal(dirents.get('fifo')?.split(' ')[0], '1', 'a fifo is DT_FIFO')
  for (const name of ['sub', 'file', 'link', 'fifo', 'hard']) {
    t.equal(dirents.get(name), lstats.get(name), `${name}: d_type and d_ino agree with lstat`)
  }
  t.equal(dirents.get('hard'), dirents.get('file'), 'both names of a hard link show one inode')
  // find decides by d_type alone: the same answer as with stat
  t.equal(await sh(`cd ${q(d)} && find . -type d | sort | tr '\\n' ' '`), '. ./sub ', 'find -type d')
  t.ok(m.running, 'daemon alive')
  const stop = await m.stop()
  t.equal(stop.code, 0, 'SIGTERM exits 0')
  t.same(daemonErrors(m.stderr), [], 'the daemon logged no unexpected errors')
})
