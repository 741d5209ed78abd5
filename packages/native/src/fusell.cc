// agentfs_fuse: a policy-free binding of the libfuse 3 low-level API
// (fuse_lowlevel.h) that runs on the Node event loop.
//
// The /dev/fuse descriptor is non-blocking and watched by a uv_poll handle:
// when it is readable, requests are read into one buffer owned by JS (so
// write payloads need no copy) and handed to libfuse, whose op callbacks call
// a single JS dispatch function synchronously on the loop thread. No thread
// hand-off: a request costs one read(2), one JS call and one writev(2).
//
// A request is identified in JS by a small integer *slot*. JS answers it at
// any later time with one of the reply methods; every reply frees the slot.
// Attributes travel through a shared Float64Array (`attr`, ATTR_FIELDS
// doubles per entry) and the caller of the request being dispatched through a
// shared Int32Array (`ctx`: uid, gid, pid, umask), so a reply makes no
// objects.
//
// No policy lives here: which capabilities to ask for, timeouts and every
// answer come from JS.

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>  // the wire structs: INIT flags, write_flags and setattr valid bits libfuse 3.14 does not pass on

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace {

// Operation codes passed as the first dispatch argument (mirrored in JS by `FUSE_OPS`).
enum Op {
  OP_INIT = 0, OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
  OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH,
  OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS,
  OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_ACCESS, OP_CREATE, OP_READDIRPLUS,
  OP_FALLOCATE, OP_LSEEK, OP_EXIT, OP_TMPFILE, OP_COUNT
};
const char* const kOpNames[OP_COUNT] = {
  "init", "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
  "unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush",
  "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir", "statfs",
  "setxattr", "getxattr", "listxattr", "removexattr", "access", "create", "readdirplus",
  "fallocate", "lseek", "exit", "tmpfile",
};

// Layout of one attribute record in the shared `attr` array.
enum AttrField {
  A_INO = 0, A_MODE, A_NLINK, A_UID, A_GID, A_RDEV, A_SIZE, A_BLOCKS, A_BLKSIZE,
  A_ATIME, A_ATIME_NS, A_MTIME, A_MTIME_NS, A_CTIME, A_CTIME_NS, ATTR_FIELDS
};
const size_t kAttrRecords = 128;  // readdirplus entries per reply (a 4 KiB page holds at most ~27)
// libfuse 3 reads each request with a buffer of FUSE_MAX_MAX_PAGES (256) pages plus a header page (fuse_i.h).
const size_t kMaxPages = 256;
// FUSE_TMPFILE (protocol 7.37, Linux 6.1): a literal, so that older <linux/fuse.h> still compile.
const uint32_t kFuseTmpfile = 51;

// Open-reply flag bits (replyOpen/replyCreate `flags`).
enum OpenFlag { OF_DIRECT_IO = 1, OF_KEEP_CACHE = 2, OF_NONSEEKABLE = 4, OF_CACHE_READDIR = 8, OF_NOFLUSH = 16 };

// Sessions mounted now, for the exit(3) handler: a process that leaves through exit() (process.exit,
// an uncaught exception) while mounted would otherwise leave a stale mount (ENOTCONN) behind.
std::mutex gMountedLock;
std::set<struct fuse_session*> gMounted;

void UnmountAllAtExit() {
  std::lock_guard<std::mutex> g(gMountedLock);
  for (struct fuse_session* se : gMounted) fuse_session_unmount(se);
  gMounted.clear();
}

void TrackMounted(struct fuse_session* se, bool on) {
  static bool registered = false;
  std::lock_guard<std::mutex> g(gMountedLock);
  if (on) {
    if (!registered) registered = atexit(UnmountAllAtExit) == 0;
    gMounted.insert(se);
  } else {
    gMounted.erase(se);
  }
}

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). Names cross into
// JS as strings: any other byte sequence would be decoded with U+FFFD in place of the bad bytes, and two
// different names would then reach the same file.
bool ValidUtf8(const char* s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s);
  while (*p) {
    unsigned c = *p;
    int n;
    unsigned min;
    if (c < 0x80) {
      p++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    p++;
    for (int i = 0; i < n; i++, p++) {
      if ((*p & 0xc0) != 0x80) return false;
      c = (c << 6) | (*p & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

// Answers `req` with `err` when `name` is not UTF-8 (see ValidUtf8); true when it did. For an existing
// name (lookup, unlink, rmdir, rename's source) the answer is ENOENT: no such name can be stored. For a
// new one, EILSEQ: agentfs stores names (and symlink targets, xattr names) as UTF-8 text.
bool RefuseName(fuse_req_t req, const char* name, int err) {
  if (ValidUtf8(name)) return false;
  fuse_reply_err(req, err);
  return true;
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : "EIO";
  std::string msg = code + ": " + strerror(err) + ", " + syscall + (detail.empty() ? "" : " '" + detail + "'");
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

struct NotifyBatch;

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override { Teardown(); }

  // libfuse op callbacks (static: they find the Session through fuse_req_userdata).
  static void Init(void* userdata, struct fuse_conn_info* conn);
  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
  static void ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets);
  static void Getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info* fi);
  static void Readlink(fuse_req_t req, fuse_ino_t ino);
  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname, unsigned int flags);
  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  static void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);
  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, struct fuse_file_info* fi);
  static void Flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi);
  static void Opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);
  static void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);
  static void Releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  static void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi);
  static void Statfs(fuse_req_t req, fuse_ino_t ino);
  static void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
  static void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  static void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  static void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);
  static void Access(fuse_req_t req, fuse_ino_t ino, int mask);
  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi);
  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info* fi);
  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info* fi);

 private:
  // JS methods.
  Napi::Value Mount(const Napi::CallbackInfo& info);
  Napi::Value Unmount(const Napi::CallbackInfo& info);
  Napi::Value ReplyErr(const Napi::CallbackInfo& info);
  Napi::Value ReplyNone(const Napi::CallbackInfo& info);
  Napi::Value ReplyEntry(const Napi::CallbackInfo& info);
  Napi::Value ReplyAttr(const Napi::CallbackInfo& info);
  Napi::Value ReplyCreate(const Napi::CallbackInfo& info);
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info);
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info);
  Napi::Value ReplyBuf(const Napi::CallbackInfo& info);
  Napi::Value ReplyReadlink(const Napi::CallbackInfo& info);
  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info);
  Napi::Value ReplyXattr(const Napi::CallbackInfo& info);
  Napi::Value ReplyLseek(const Napi::CallbackInfo& info);
  Napi::Value ReplyDir(const Napi::CallbackInfo& info);
  Napi::Value NotifyAsync(const Napi::CallbackInfo& info);
  Napi::Value NotifyStoreAsync(const Napi::CallbackInfo& info);
  NotifyBatch* NewBatch(const Napi::CallbackInfo& info, size_t cbArg);
  void QueueBatch(NotifyBatch* b);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  Napi::Value SpinStats(const Napi::CallbackInfo& info);
  Napi::Value KillprivV2(const Napi::CallbackInfo& info);
  Napi::Value CapabilityProbes(const Napi::CallbackInfo& info);
  static ssize_t IoRead(int fd, void* buf, size_t len, void* userdata);
  static ssize_t IoWritev(int fd, struct iovec* iov, int count, void* userdata);
  bool WriteKillsSuidgid() const;

  static Session* Of(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }
  static void OnReadable(uv_poll_t* handle, int status, int events);
  int Drain(struct fuse_buf* first);
  int Receive(struct fuse_buf* fbuf);
  void Exit();
  void Teardown();
  void Release();
  bool ShouldSpin();
  int Spin(struct fuse_buf* fbuf);
  static void CleanupHook(void* arg);

  // Dispatches `op` for `req` to JS with `args` after the op and slot (slot -1: no reply expected).
  void Dispatch(Op op, fuse_req_t req, std::initializer_list<napi_value> args);
  int Take(const Napi::CallbackInfo& info);  // frees and returns the slot's request index, or -1 (throws)
  fuse_req_t TakeReq(const Napi::CallbackInfo& info);
  void FillAttr(const double* a, struct stat* st);
  void FillEntry(const double* a, double entryTimeout, double attrTimeout, struct fuse_entry_param* e);

  Napi::Env env_;
  struct fuse_session* se_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  bool mounted_ = false;
  bool exited_ = false;
  bool draining_ = false;         // inside Drain: libfuse is on the stack
  bool teardownPending_ = false;  // unmount() called from a handler: done when Drain returns
  int notifying_ = 0;             // notifyAsync/notifyStoreAsync batches running on the thread pool
  bool destroyAfterNotify_ = false;  // Teardown ran while a batch was running: free the session when it ends
  bool hooked_ = false;              // env cleanup hook registered (while mounted)
  Napi::FunctionReference dispatch_;
  Napi::ObjectReference self_;
  Napi::AsyncContext* async_ = nullptr;
  Napi::Reference<Napi::Buffer<char>> recv_;
  char* recvMem_ = nullptr;
  size_t recvSize_ = 0;
  // libfuse reads each request with a buffer of se->bufsize bytes, a private field. Up to 3.16 that is
  // FUSE_MAX_MAX_PAGES (256) pages plus a header page, so `recv` (258 pages) holds any request; later
  // versions size it from the kernel's max_pages_limit, so there libfuse allocates the buffer itself
  // and write payloads are copied out.
  bool ownBuffer_ = fuse_version() <= 316;
  void* libfuseMem_ = nullptr;
  Napi::Reference<Napi::Float64Array> attrRef_;
  double* attr_ = nullptr;
  Napi::Reference<Napi::Int32Array> ctxRef_;
  int32_t* ctx_ = nullptr;
  std::vector<fuse_req_t> reqs_;
  std::vector<int32_t> free_;
  size_t live_ = 0;
  // INIT parameters chosen by JS.
  unsigned maxWrite_ = 1 << 20, maxReadahead_ = 1 << 20, wantSet_ = 0, wantClear_ = 0, timeGran_ = 1;
  unsigned maxBackground_ = 0, congestion_ = 0;
  bool answerCapability_ = true;
  long spinNs_ = 0;     // longest poll for a next request after a burst (config.spinUs); 0: never
  int spinCredit_ = 4;  // adaptive spin state (see Spin)
  int spinSkip_ = 0;
  double spins_ = 0, spinHits_ = 0;  // getxattr("security.capability") → ENODATA without a JS call
  // FUSE_HANDLE_KILLPRIV_V2 (config.killprivV2), which libfuse 3.14 cannot negotiate: the INIT reply
  // is amended on its way out (IoWritev) when the kernel offered it.
  bool wantKillprivV2_ = false;
  bool kernelKillprivV2_ = false;  // the INIT request offered it
  std::atomic<uint64_t> initUnique_{0};  // the INIT request's unique, until its reply went out (writev also runs on notify threads)
  bool killprivV2_ = false;        // negotiated
  double capabilityProbes_ = 0;    // getxattr("security.capability") answered here
  const char* cur_ = nullptr;      // the request being processed (header first), for the write flag libfuse drops
  bool tmpfile_ = false;           // it is a FUSE_TMPFILE, handed to libfuse as the CREATE it resembles
};

// ---------------------------------------------------------------------------

Napi::Function Session::Define(Napi::Env env) {
  return DefineClass(env, "FuseSession", {
    InstanceMethod<&Session::Mount>("mount"),
    InstanceMethod<&Session::Unmount>("unmount"),
    InstanceMethod<&Session::ReplyErr>("replyErr"),
    InstanceMethod<&Session::ReplyNone>("replyNone"),
    InstanceMethod<&Session::ReplyEntry>("replyEntry"),
    InstanceMethod<&Session::ReplyAttr>("replyAttr"),
    InstanceMethod<&Session::ReplyCreate>("replyCreate"),
    InstanceMethod<&Session::ReplyOpen>("replyOpen"),
    InstanceMethod<&Session::ReplyWrite>("replyWrite"),
    InstanceMethod<&Session::ReplyBuf>("replyBuf"),
    InstanceMethod<&Session::ReplyReadlink>("replyReadlink"),
    InstanceMethod<&Session::ReplyStatfs>("replyStatfs"),
    InstanceMethod<&Session::ReplyXattr>("replyXattr"),
    InstanceMethod<&Session::ReplyLseek>("replyLseek"),
    InstanceMethod<&Session::ReplyDir>("replyDir"),
    InstanceMethod<&Session::NotifyAsync>("notifyAsync"),
    InstanceMethod<&Session::NotifyStoreAsync>("notifyStoreAsync"),
    InstanceMethod<&Session::Pending>("pending"),
    InstanceMethod<&Session::SpinStats>("spinStats"),
    InstanceMethod<&Session::KillprivV2>("killprivV2"),
    InstanceMethod<&Session::CapabilityProbes>("capabilityProbes"),
  });
}

// new FuseSession(args: string[], dispatch: Function, config: object)
Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsFunction() || !info[2].IsObject()) {
    Napi::TypeError::New(env, "FuseSession(args: string[], dispatch: Function, config: object)").ThrowAsJavaScriptException();
    return;
  }
  Napi::Array jsArgs = info[0].As<Napi::Array>();
  std::vector<std::string> store;
  for (uint32_t i = 0; i < jsArgs.Length(); i++) store.push_back(jsArgs.Get(i).ToString().Utf8Value());
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(const_cast<char*>(s.c_str()));
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  Napi::Object cfg = info[2].As<Napi::Object>();
  auto num = [&](const char* k, unsigned def) -> unsigned {
    Napi::Value v = cfg.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
  };
  maxWrite_ = num("maxWrite", maxWrite_);
  maxReadahead_ = num("maxReadahead", maxReadahead_);
  wantSet_ = num("wantSet", 0);
  wantClear_ = num("wantClear", 0);
  timeGran_ = num("timeGran", 1);
  maxBackground_ = num("maxBackground", 0);
  congestion_ = num("congestionThreshold", 0);
  answerCapability_ = !cfg.Get("fileCapabilities").ToBoolean().Value();
  spinNs_ = static_cast<long>(num("spinUs", 0)) * 1000L;
  wantKillprivV2_ = cfg.Get("killprivV2").ToBoolean().Value();

  static const struct fuse_lowlevel_ops ops = [] {
    struct fuse_lowlevel_ops o;
    memset(&o, 0, sizeof o);
    o.init = Session::Init;
    o.lookup = Session::Lookup;
    o.forget = Session::Forget;
    o.forget_multi = Session::ForgetMulti;
    o.getattr = Session::Getattr;
    o.setattr = Session::Setattr;
    o.readlink = Session::Readlink;
    o.mknod = Session::Mknod;
    o.mkdir = Session::Mkdir;
    o.unlink = Session::Unlink;
    o.rmdir = Session::Rmdir;
    o.symlink = Session::Symlink;
    o.rename = Session::Rename;
    o.link = Session::Link;
    o.open = Session::Open;
    o.read = Session::Read;
    o.write = Session::Write;
    o.flush = Session::Flush;
    o.release = Session::Release;
    o.fsync = Session::Fsync;
    o.opendir = Session::Opendir;
    o.readdir = Session::Readdir;
    o.readdirplus = Session::Readdirplus;
    o.releasedir = Session::Releasedir;
    o.fsyncdir = Session::Fsyncdir;
    o.statfs = Session::Statfs;
    o.setxattr = Session::Setxattr;
    o.getxattr = Session::Getxattr;
    o.listxattr = Session::Listxattr;
    o.removexattr = Session::Removexattr;
    o.access = Session::Access;
    o.create = Session::Create;
    o.fallocate = Session::Fallocate;
    o.lseek = Session::Lseek;
    return o;
  }();

  se_ = fuse_session_new(&args, &ops, sizeof ops, this);
  fuse_opt_free_args(&args);
  if (!se_) {
    ErrnoError(env, EINVAL, "fuse_session_new", "an unknown -o option? libfuse printed why on stderr").ThrowAsJavaScriptException();
    return;
  }
  dispatch_ = Napi::Persistent(info[1].As<Napi::Function>());

  // One receive buffer, owned by JS: libfuse reads each request into it and write payloads are slices of it.
  recvSize_ = static_cast<size_t>(kMaxPages + 2) * static_cast<size_t>(getpagesize());
  Napi::Buffer<char> rb = Napi::Buffer<char>::New(env, recvSize_);
  recvMem_ = rb.Data();
  recv_ = Napi::Persistent(rb);
  Napi::Float64Array at = Napi::Float64Array::New(env, kAttrRecords * ATTR_FIELDS);
  attr_ = at.Data();
  attrRef_ = Napi::Persistent(at);
  Napi::Int32Array cx = Napi::Int32Array::New(env, 4);
  ctx_ = cx.Data();
  ctxRef_ = Napi::Persistent(cx);
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("recv", rb);
  self.Set("attr", at);
  self.Set("ctx", cx);
  self.Set("attrFields", Napi::Number::New(env, ATTR_FIELDS));
  self.Set("attrRecords", Napi::Number::New(env, kAttrRecords));
}

// mount(mountpoint: string): void — fuse_session_mount, then serve on the loop.
Napi::Value Session::Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!se_ || mounted_) return ErrnoError(env, EINVAL, "fuse_session_mount").ThrowAsJavaScriptException(), env.Undefined();
  std::string mnt = info[0].ToString().Utf8Value();
  if (fuse_session_mount(se_, mnt.c_str()) != 0) {
    int err = errno ? errno : EIO;
    struct stat st;
    if (stat(mnt.c_str(), &st) != 0) err = errno;
    else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
    ErrnoError(env, err, "fuse_session_mount", mnt).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  mounted_ = true;
  TrackMounted(se_, true);
  int fd = fuse_session_fd(se_);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (wantKillprivV2_) {
    // The same /dev/fuse descriptor, read and written through hooks that see INIT and its reply.
    static const struct fuse_custom_io io = {IoWritev, IoRead, nullptr, nullptr};
    if (fuse_session_custom_io(se_, &io, fd) != 0) wantKillprivV2_ = false;
  }
  self_ = Napi::Persistent(info.This().As<Napi::Object>());  // alive while mounted
  async_ = new Napi::AsyncContext(env, "agentfs:fuse", info.This().As<Napi::Object>());
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, fd);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnReadable);
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  hooked_ = true;
  return env.Undefined();
}

void Session::OnReadable(uv_poll_t* handle, int status, int events) {
  Session* s = static_cast<Session*>(handle->data);
  if (!s || !s->se_) return;
  struct fuse_buf fbuf;
  int pending = 0;  // a request already read into fbuf (by a spin), to serve first
  for (int round = 0;; round++) {
    int served;
    {
      Napi::HandleScope hs(s->env_);
      Napi::CallbackScope cs(s->env_, *s->async_);  // runs process.nextTick and promise jobs when closed
      s->draining_ = true;
      served = s->Drain(pending ? &fbuf : nullptr);
      s->draining_ = false;
    }
    // Replies made by promise jobs (flush, fsync, release) went out when the scope closed; only now
    // may the loop wait a little for the client's next request (Spin) instead of sleeping in epoll.
    // (At most 8 rounds per wake-up, so timers and other I/O get their turn; a request a spin read is
    // always served in the next round.)
    if (round >= 7 || s->teardownPending_ || !s->se_ || s->exited_ || served <= 0 || !s->ShouldSpin()) break;
    pending = s->Spin(&fbuf) > 0;
    if (!pending) break;
  }
  // unmount() from a handler: now that libfuse has returned and the callback scope is closed.
  if (s->teardownPending_) s->Teardown();
}

// Reads (into the receive buffer) and serves what the kernel has queued, at most 64 requests; `first`,
// when given, holds a request already read. Returns how many were served, or -1 once the session ended.
int Session::Drain(struct fuse_buf* first) {
  int served = 0;
  for (int i = 0; i < 64 && se_ && !exited_; i++) {
    struct fuse_buf fbuf;
    int res;
    if (first) {
      fbuf = *first;
      res = static_cast<int>(fbuf.size);
      first = nullptr;
    } else {
      res = Receive(&fbuf);
    }
    if (res == -EAGAIN || res == -EINTR) return served;
    if (res <= 0 || fuse_session_exited(se_)) {  // ENODEV: unmounted (e.g. fusermount -u), or a fatal read error
      Exit();
      return -1;
    }
    cur_ = res >= static_cast<int>(sizeof(struct fuse_in_header)) ? static_cast<const char*>(fbuf.mem) : nullptr;
    // libfuse 3.14 answers FUSE_TMPFILE (O_TMPFILE, Linux 6.1) ENOSYS: its arguments and reply are CREATE's
    // (fuse_create_in, a name, then entry and open replies), so it goes through libfuse as one (Session::Create).
    struct fuse_in_header* in = cur_ ? static_cast<struct fuse_in_header*>(fbuf.mem) : nullptr;
    tmpfile_ = in && in->opcode == kFuseTmpfile;
    if (tmpfile_) in->opcode = FUSE_CREATE;
    fuse_session_process_buf(se_, &fbuf);
    cur_ = nullptr;
    tmpfile_ = false;
    served++;
    if (fuse_session_exited(se_)) {
      Exit();
      return -1;
    }
  }
  return served;
}

// One fuse_session_receive_buf into the receive buffer: the request's size, -EAGAIN when none is queued,
// 0 or another negative errno when the session ended.
int Session::Receive(struct fuse_buf* fbuf) {
  memset(fbuf, 0, sizeof *fbuf);
  if (ownBuffer_) {
    fbuf->mem = recvMem_;
    fbuf->size = recvSize_;
  } else {
    fbuf->mem = libfuseMem_;  // NULL the first time: libfuse allocates its buffer, kept for the session
  }
  int res = fuse_session_receive_buf(se_, fbuf);
  if (!ownBuffer_) libfuseMem_ = fbuf->mem;
  return res;
}

// Whether to poll for a next request before going back to epoll (see Spin): not while recent spins
// mostly came back empty (then a burst of bursts is skipped before trying again).
bool Session::ShouldSpin() {
  if (spinNs_ <= 0) return false;
  if (spinSkip_ > 0) {
    spinSkip_--;
    return false;
  }
  return true;
}

// A program waiting on the mount sends its next request ~10-20 us after a reply (path walks, open +
// read + close); a wake-up through epoll costs far more than that on a virtual machine (measured
// here: stat through the mount 316 us without, 146 us with 20 us of polling). So after serving a
// burst, read again for up to spinNs_ before sleeping; returns the size of a request now in `fbuf`,
// or 0. Adaptive: a spin that finds nothing costs credit, one that finds a request earns it; out of
// credit, the next 32 bursts go straight to epoll.
int Session::Spin(struct fuse_buf* fbuf) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int res;
  for (;;) {
    res = Receive(fbuf);
    if (res != -EAGAIN) break;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) > spinNs_) break;
  }
  spins_++;
  if (res == -EAGAIN) {
    spinCredit_ -= 2;
    if (spinCredit_ < 0) {
      spinCredit_ = 0;
      spinSkip_ = 32;
    }
    return 0;
  }
  spinHits_++;
  if (spinCredit_ < 16) spinCredit_++;
  // A request (res > 0) for the caller to serve; 0 or a negative errno other than EAGAIN: the session
  // ended, which the next Drain finds out by reading again.
  return res > 0 ? res : 0;
}

// The kernel side is gone: stop polling and tell JS (op "exit").
void Session::Exit() {
  if (exited_) return;
  exited_ = true;
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  Dispatch(OP_EXIT, nullptr, {});
}

// unmount(): void — stops serving, unmounts (lazily, as root: umount2 MNT_DETACH) and frees the session.
// Requests still waiting for a reply are answered with EIO first; later replies to them are ignored.
Napi::Value Session::Unmount(const Napi::CallbackInfo& info) {
  if (draining_) {
    // Called from a handler: libfuse is still processing a request. Stop reading now, free after it returns.
    teardownPending_ = true;
    exited_ = true;
    return info.Env().Undefined();
  }
  Teardown();
  return info.Env().Undefined();
}

void Session::Teardown() {
  teardownPending_ = false;
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  exited_ = true;
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hooked_ = false;
  }
  for (auto& r : reqs_) {
    if (r) fuse_reply_err(r, EIO);
    r = nullptr;
  }
  live_ = 0;
  if (notifying_ > 0) {
    // A notification batch still writes to /dev/fuse on a pool thread: unmount and free when it ends.
    destroyAfterNotify_ = true;
    return;
  }
  Release();
}

// Unmounts, frees the libfuse session and lets the JS object go (the last step of Teardown).
void Session::Release() {
  free(libfuseMem_);
  libfuseMem_ = nullptr;
  if (se_) {
    if (mounted_) {
      TrackMounted(se_, false);
      fuse_session_unmount(se_);
    }
    mounted_ = false;
    fuse_session_destroy(se_);
    se_ = nullptr;
  }
  if (async_) {
    delete async_;
    async_ = nullptr;
  }
  if (!self_.IsEmpty()) self_.Reset();
}

// Node is tearing the environment down (process exit) with the session still mounted: unmount it.
void Session::CleanupHook(void* arg) {
  Session* s = static_cast<Session*>(arg);
  s->hooked_ = false;
  s->Teardown();
}

// pending(): number — requests dispatched and not answered yet.
Napi::Value Session::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live_));
}

// spinStats(): [spins, spins that found a request]
Napi::Value Session::SpinStats(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), spins_));
  a.Set(1u, Napi::Number::New(info.Env(), spinHits_));
  return a;
}

// killprivV2(): whether FUSE_HANDLE_KILLPRIV_V2 was negotiated. Then the kernel leaves clearing
// set-user-ID/set-group-ID to the daemon: a write or truncate by a caller without CAP_FSETID carries
// KILL_SUIDGID (write's 8th argument, FUSE_WRITE_KILL_SUIDGID, read from the raw request since
// fuse_file_info has no field for it; setattr's mask bit setAttr.KILL_SUIDGID), as does any chown of
// a non-directory; and it stops asking getxattr("security.capability") before every write(2) (SB_NOSEC).
Napi::Value Session::KillprivV2(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), killprivV2_);
}

// capabilityProbes(): getxattr("security.capability") requests answered in the binding (fileCapabilities off).
Napi::Value Session::CapabilityProbes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), capabilityProbes_);
}

// Custom io read: read(2), noting the INIT request (its unique, and whether the kernel offers KILLPRIV_V2).
ssize_t Session::IoRead(int fd, void* buf, size_t len, void* userdata) {
  Session* s = static_cast<Session*>(userdata);
  ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags) + sizeof(uint32_t))) {
    const struct fuse_in_header* h = static_cast<const struct fuse_in_header*>(buf);
    if (h->opcode == FUSE_INIT) {
      const struct fuse_init_in* in = reinterpret_cast<const struct fuse_init_in*>(h + 1);
      s->kernelKillprivV2_ = (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
      s->initUnique_ = h->unique;
    }
  }
  return n;
}

// Custom io writev: writev(2), setting FUSE_HANDLE_KILLPRIV_V2 in a successful INIT reply the kernel offered it in.
ssize_t Session::IoWritev(int fd, struct iovec* iov, int count, void* userdata) {
  Session* s = static_cast<Session*>(userdata);
  if (s->initUnique_ != 0 && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
    const struct fuse_out_header* h = static_cast<const struct fuse_out_header*>(iov[0].iov_base);
    if (h->unique == s->initUnique_) {
      s->initUnique_ = 0;
      if (h->error == 0 && s->kernelKillprivV2_ && iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
        static_cast<struct fuse_init_out*>(iov[1].iov_base)->flags |= FUSE_HANDLE_KILLPRIV_V2;
        s->killprivV2_ = true;
      }
    }
  }
  return writev(fd, iov, count);
}

// Whether the WRITE being processed carries the kernel's FUSE_WRITE_KILL_SUIDGID (fuse_file_info has no field for it).
bool Session::WriteKillsSuidgid() const {
  if (!killprivV2_ || !cur_) return false;
  const struct fuse_in_header* h = reinterpret_cast<const struct fuse_in_header*>(cur_);
  if (h->opcode != FUSE_WRITE || h->len < sizeof *h + sizeof(struct fuse_write_in)) return false;
  return (reinterpret_cast<const struct fuse_write_in*>(h + 1)->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
}

void Session::Dispatch(Op op, fuse_req_t req, std::initializer_list<napi_value> args) {
  Napi::Env env = env_;
  int32_t slot = -1;
  if (req) {
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
      reqs_[slot] = req;
    } else {
      slot = static_cast<int32_t>(reqs_.size());
      reqs_.push_back(req);
    }
    live_++;
    const struct fuse_ctx* c = fuse_req_ctx(req);
    ctx_[0] = static_cast<int32_t>(c->uid);
    ctx_[1] = static_cast<int32_t>(c->gid);
    ctx_[2] = static_cast<int32_t>(c->pid);
    ctx_[3] = static_cast<int32_t>(c->umask);
  }
  std::vector<napi_value> argv;
  argv.reserve(args.size() + 2);
  argv.push_back(Napi::Number::New(env, op));
  argv.push_back(Napi::Number::New(env, slot));
  for (napi_value v : args) argv.push_back(v);
  dispatch_.Call(argv);
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    if (slot >= 0 && static_cast<size_t>(slot) < reqs_.size() && reqs_[slot] == req) {
      reqs_[slot] = nullptr;
      free_.push_back(slot);
      live_--;
      fuse_reply_err(req, EIO);
    }
    napi_fatal_exception(env, e.Value());
  }
}

fuse_req_t Session::TakeReq(const Napi::CallbackInfo& info) {
  int32_t slot = info[0].As<Napi::Number>().Int32Value();
  if (slot < 0 || static_cast<size_t>(slot) >= reqs_.size() || !reqs_[slot]) return nullptr;  // answered, or torn down
  fuse_req_t r = reqs_[slot];
  reqs_[slot] = nullptr;
  free_.push_back(slot);
  live_--;
  return r;
}

#define NUM(i) info[i].As<Napi::Number>().DoubleValue()
#define U64(i) static_cast<uint64_t>(info[i].As<Napi::Number>().DoubleValue())
#define STR(v) Napi::String::New(env, v)
#define DBL(v) Napi::Number::New(env, static_cast<double>(v))

void Session::FillAttr(const double* a, struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_ino = static_cast<ino_t>(a[A_INO]);
  st->st_mode = static_cast<mode_t>(a[A_MODE]);
  st->st_nlink = static_cast<nlink_t>(a[A_NLINK]);
  st->st_uid = static_cast<uid_t>(a[A_UID]);
  st->st_gid = static_cast<gid_t>(a[A_GID]);
  st->st_rdev = static_cast<dev_t>(a[A_RDEV]);
  st->st_size = static_cast<off_t>(a[A_SIZE]);
  st->st_blocks = static_cast<blkcnt_t>(a[A_BLOCKS]);
  st->st_blksize = static_cast<blksize_t>(a[A_BLKSIZE]);
  st->st_atim.tv_sec = static_cast<time_t>(a[A_ATIME]);
  st->st_atim.tv_nsec = static_cast<long>(a[A_ATIME_NS]);
  st->st_mtim.tv_sec = static_cast<time_t>(a[A_MTIME]);
  st->st_mtim.tv_nsec = static_cast<long>(a[A_MTIME_NS]);
  st->st_ctim.tv_sec = static_cast<time_t>(a[A_CTIME]);
  st->st_ctim.tv_nsec = static_cast<long>(a[A_CTIME_NS]);
}

void Session::FillEntry(const double* a, double entryTimeout, double attrTimeout, struct fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = static_cast<fuse_ino_t>(a[A_INO]);
  e->generation = 0;
  FillAttr(a, &e->attr);
  e->attr_timeout = attrTimeout;
  e->entry_timeout = entryTimeout;
}

// replyErr(slot, errno > 0 or 0)
Napi::Value Session::ReplyErr(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (r) fuse_reply_err(r, info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// replyNone(slot) — for forget-like requests that take no answer.
Napi::Value Session::ReplyNone(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (r) fuse_reply_none(r);
  return info.Env().Undefined();
}

// replyEntry(slot, entryTimeout s, attrTimeout s) → false when the kernel did not take it (interrupted).
// Attributes from attr[0..]; ino 0 = negative entry.
Napi::Value Session::ReplyEntry(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return Napi::Boolean::New(info.Env(), false);
  struct fuse_entry_param e;
  FillEntry(attr_, NUM(1), NUM(2), &e);
  // -ENOENT: the caller was interrupted and the kernel took no reference (a positive entry must not be counted).
  return Napi::Boolean::New(info.Env(), fuse_reply_entry(r, &e) != -ENOENT);
}

// replyAttr(slot, attrTimeout s) — attributes from attr[0..].
Napi::Value Session::ReplyAttr(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return info.Env().Undefined();
  struct stat st;
  FillAttr(attr_, &st);
  fuse_reply_attr(r, &st, NUM(1));
  return info.Env().Undefined();
}

static void SetOpenFlags(struct fuse_file_info* fi, uint64_t fh, unsigned flags) {
  fi->fh = fh;
  fi->direct_io = (flags & OF_DIRECT_IO) != 0;
  fi->keep_cache = (flags & OF_KEEP_CACHE) != 0;
  fi->nonseekable = (flags & OF_NONSEEKABLE) != 0;
  fi->cache_readdir = (flags & OF_CACHE_READDIR) != 0;
  fi->noflush = (flags & OF_NOFLUSH) != 0;
}

// replyCreate(slot, entryTimeout, attrTimeout, fh, openFlags) — attributes from attr[0..].
Napi::Value Session::ReplyCreate(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return info.Env().Undefined();
  struct fuse_entry_param e;
  FillEntry(attr_, NUM(1), NUM(2), &e);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  SetOpenFlags(&fi, U64(3), info[4].As<Napi::Number>().Uint32Value());
  if (fuse_reply_create(r, &e, &fi) == -ENOENT) {
    // The opener was interrupted: the kernel will not release this handle. JS learns it from the return value.
    return Napi::Boolean::New(info.Env(), false);
  }
  return Napi::Boolean::New(info.Env(), true);
}

// replyOpen(slot, fh, openFlags) → false when the kernel no longer wants the handle (interrupted open).
Napi::Value Session::ReplyOpen(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return Napi::Boolean::New(info.Env(), false);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  SetOpenFlags(&fi, U64(1), info[2].As<Napi::Number>().Uint32Value());
  return Napi::Boolean::New(info.Env(), fuse_reply_open(r, &fi) != -ENOENT);
}

// replyWrite(slot, bytesWritten)
Napi::Value Session::ReplyWrite(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (r) fuse_reply_write(r, static_cast<size_t>(NUM(1)));
  return info.Env().Undefined();
}

// replyBuf(slot, buffer, offset, length) — read data, getxattr/listxattr values.
Napi::Value Session::ReplyBuf(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return info.Env().Undefined();
  Napi::Uint8Array b = info[1].As<Napi::Uint8Array>();
  size_t off = static_cast<size_t>(NUM(2)), len = static_cast<size_t>(NUM(3));
  if (off > b.ByteLength() || len > b.ByteLength() - off) {
    fuse_reply_err(r, EIO);
    Napi::RangeError::New(info.Env(), "replyBuf: range outside the buffer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  fuse_reply_buf(r, reinterpret_cast<const char*>(b.Data()) + off, len);
  return info.Env().Undefined();
}

// replyReadlink(slot, target: string)
Napi::Value Session::ReplyReadlink(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return info.Env().Undefined();
  std::string t = info[1].ToString().Utf8Value();
  fuse_reply_readlink(r, t.c_str());
  return info.Env().Undefined();
}

// replyStatfs(slot, [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax])
Napi::Value Session::ReplyStatfs(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (!r) return info.Env().Undefined();
  Napi::Array a = info[1].As<Napi::Array>();
  auto at = [&](uint32_t i) { return static_cast<unsigned long>(a.Get(i).As<Napi::Number>().DoubleValue()); };
  struct statvfs sv;
  memset(&sv, 0, sizeof sv);
  sv.f_bsize = at(0);
  sv.f_frsize = at(1);
  sv.f_blocks = at(2);
  sv.f_bfree = at(3);
  sv.f_bavail = at(4);
  sv.f_files = at(5);
  sv.f_ffree = at(6);
  sv.f_favail = at(7);
  sv.f_fsid = at(8);
  sv.f_flag = at(9);
  sv.f_namemax = at(10);
  fuse_reply_statfs(r, &sv);
  return info.Env().Undefined();
}

// replyXattr(slot, size) — the size of a value or list, for a request with size 0.
Napi::Value Session::ReplyXattr(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (r) fuse_reply_xattr(r, static_cast<size_t>(NUM(1)));
  return info.Env().Undefined();
}

// replyLseek(slot, offset)
Napi::Value Session::ReplyLseek(const Napi::CallbackInfo& info) {
  fuse_req_t r = TakeReq(info);
  if (r) fuse_reply_lseek(r, static_cast<off_t>(NUM(1)));
  return info.Env().Undefined();
}

// replyDir(slot, size, firstOffset, names: string[], inos: number[], types: number[] | null, plus: boolean,
//          entryTimeout, attrTimeout) → entries that fit.
// Entry i gets directory offset firstOffset + i + 1. Plain: ino and type (S_IFMT bits) per entry.
// Plus: attributes of entry i from attr[i * ATTR_FIELDS ..]; a record with ino 0 sends no attributes and
// takes no lookup reference (the dirent then carries inos[i] and types[i]).
Napi::Value Session::ReplyDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  fuse_req_t r = TakeReq(info);
  if (!r) return Napi::Number::New(env, 0);
  size_t size = static_cast<size_t>(NUM(1));
  double first = NUM(2);
  Napi::Array names = info[3].As<Napi::Array>();
  Napi::Array inos = info[4].As<Napi::Array>();
  bool plus = info[6].ToBoolean().Value();
  double et = NUM(7), at = NUM(8);
  std::vector<char> buf(size);
  size_t used = 0;
  uint32_t n = names.Length(), i = 0;
  if (plus && n > kAttrRecords) n = static_cast<uint32_t>(kAttrRecords);
  for (; i < n; i++) {
    std::string name = names.Get(i).ToString().Utf8Value();
    off_t off = static_cast<off_t>(first + i + 1);
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      FillEntry(attr_ + static_cast<size_t>(i) * ATTR_FIELDS, et, at, &e);
      if (e.ino == 0) {  // no attributes ("." and "..", or gone since the listing): name, inode number and type only
        e.attr.st_ino = static_cast<ino_t>(inos.Get(i).As<Napi::Number>().DoubleValue());
        e.attr.st_mode = static_cast<mode_t>(info[5].As<Napi::Array>().Get(i).As<Napi::Number>().Uint32Value());
      }
      need = fuse_add_direntry_plus(r, buf.data() + used, size - used, name.c_str(), &e, off);
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = static_cast<ino_t>(inos.Get(i).As<Napi::Number>().DoubleValue());
      st.st_mode = static_cast<mode_t>(info[5].As<Napi::Array>().Get(i).As<Napi::Number>().Uint32Value());
      need = fuse_add_direntry(r, buf.data() + used, size - used, name.c_str(), &st, off);
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(r, buf.data(), used);
  return Napi::Number::New(env, i);
}

// One notifyAsync or notifyStoreAsync batch: notifications written to /dev/fuse on a libuv pool thread,
// never on the loop (a notification waits for kernel locks that a process may hold while it waits for this
// loop's reply).
struct NotifyBatch {
  uv_work_t work;
  Session* session;
  struct fuse_session* se;
  std::vector<std::pair<uint64_t, std::string>> entries;
  std::vector<uint64_t> inodes;
  bool attrsOnly = false;  // inodes: drop attributes only, keep cached pages (offset -1)
  // notifyStoreAsync: bytes for the page cache of storeIno at storeOff (store is set).
  bool store = false;
  uint64_t storeIno = 0;
  off_t storeOff = 0;
  std::vector<char> storeData;
  int done = 0;  // invalidations the kernel took; for a store, 0 or -errno
  Napi::FunctionReference cb;
  Napi::ObjectReference self;

  void Run() {
    if (store) {
      struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(storeData.size());
      bufv.buf[0].mem = storeData.data();
      done = fuse_lowlevel_notify_store(se, storeIno, storeOff, &bufv, static_cast<enum fuse_buf_copy_flags>(0));
      return;
    }
    for (auto& e : entries) {
      int r = fuse_lowlevel_notify_inval_entry(se, e.first, e.second.c_str(), e.second.size());
      if (r == 0 || r == -ENOENT) done++;
    }
    for (uint64_t ino : inodes) {
      int r = fuse_lowlevel_notify_inval_inode(se, ino, attrsOnly ? -1 : 0, 0);
      if (r == 0 || r == -ENOENT) done++;
    }
  }
};

// A new batch of this session, calling `cb` (info[cbArg]) when done; null when the session is not serving.
NotifyBatch* Session::NewBatch(const Napi::CallbackInfo& info, size_t cbArg) {
  if (!se_ || exited_ || !mounted_) return nullptr;
  auto* b = new NotifyBatch();
  b->session = this;
  b->se = se_;
  b->cb = Napi::Persistent(info[cbArg].As<Napi::Function>());
  b->self = Napi::Persistent(info.This().As<Napi::Object>());
  b->work.data = b;
  return b;
}

// Runs batch `b` on the libuv pool; its callback gets `done` on the loop afterwards.
void Session::QueueBatch(NotifyBatch* b) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env_, &loop);
  notifying_++;
  uv_queue_work(
      loop, &b->work, [](uv_work_t* w) { static_cast<NotifyBatch*>(w->data)->Run(); },
      [](uv_work_t* w, int) {
        auto* b = static_cast<NotifyBatch*>(w->data);
        Session* s = b->session;
        Napi::Env env = s->env_;
        Napi::HandleScope hs(env);
        s->notifying_--;
        if (s->notifying_ == 0 && s->destroyAfterNotify_) {
          s->destroyAfterNotify_ = false;
          s->Release();
        }
        b->cb.MakeCallback(env.Global(), {Napi::Number::New(env, b->done)});
        delete b;  // drops the batch's reference to the session object last
      });
}

// notifyAsync(entries: [parent, name][], inodes: number[], cb: (sent: number) => void, attrsOnly?: boolean): boolean
// Drops the kernel's dentries `name` in `parent` and the attributes and cached data of `inodes` (only their
// attributes with `attrsOnly`), off the loop; calls `cb` with how many notifications the kernel took
// (ENOENT, not cached, counts as taken). False (and no callback) when the session is not serving.
Napi::Value Session::NotifyAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NotifyBatch* b = NewBatch(info, 2);
  if (!b) return Napi::Boolean::New(env, false);
  Napi::Array ents = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < ents.Length(); i++) {
    Napi::Array e = ents.Get(i).As<Napi::Array>();
    b->entries.emplace_back(static_cast<uint64_t>(e.Get(0u).As<Napi::Number>().DoubleValue()), e.Get(1u).ToString().Utf8Value());
  }
  Napi::Array inos = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < inos.Length(); i++) b->inodes.push_back(static_cast<uint64_t>(inos.Get(i).As<Napi::Number>().DoubleValue()));
  b->attrsOnly = info.Length() > 3 && info[3].ToBoolean().Value();
  QueueBatch(b);
  return Napi::Boolean::New(env, true);
}

// notifyStoreAsync(ino: number, offset: number, data: Buffer, cb: (result: number) => void): boolean
// FUSE_NOTIFY_STORE: puts a copy of `data` into the kernel's page cache of inode `ino` at byte `offset`
// (pages it covers whole, or up to the end of the file, become up to date), off the loop; `cb` gets 0 or
// -errno (-ENOENT: the kernel has no such inode cached). False (and no callback) when not serving.
Napi::Value Session::NotifyStoreAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NotifyBatch* b = NewBatch(info, 3);
  if (!b) return Napi::Boolean::New(env, false);
  b->store = true;
  b->storeIno = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
  b->storeOff = static_cast<off_t>(info[1].As<Napi::Number>().DoubleValue());
  Napi::Buffer<char> data = info[2].As<Napi::Buffer<char>>();
  b->storeData.assign(data.Data(), data.Data() + data.Length());
  QueueBatch(b);
  return Napi::Boolean::New(env, true);
}

// --- libfuse callbacks ------------------------------------------------------

// Hands request `req` to JS as op `op` with the arguments that follow (napi_values; `env` is in scope for
// STR/DBL). Every callback below that only forwards is this one line.
#define FORWARD(op, ...)                    \
  do {                                      \
    Session* s = Of(req);                   \
    Napi::Env env = s->env_;                \
    s->Dispatch(op, req, {__VA_ARGS__});    \
  } while (0)


void Session::Init(void* userdata, struct fuse_conn_info* conn) {
  Session* s = static_cast<Session*>(userdata);
  unsigned want = conn->want;
  want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  want &= ~s->wantClear_;
  want |= s->wantSet_ & conn->capable;
  conn->want = want;
  conn->max_write = s->maxWrite_;
  if (s->maxReadahead_ < conn->max_readahead) conn->max_readahead = s->maxReadahead_;
  conn->time_gran = s->timeGran_;
  if (s->maxBackground_) conn->max_background = s->maxBackground_;
  if (s->congestion_) conn->congestion_threshold = s->congestion_;
  Napi::Env env = s->env_;
  s->Dispatch(OP_INIT, nullptr, {DBL(conn->capable), DBL(conn->want), DBL(conn->max_write), DBL(conn->max_readahead), DBL(conn->proto_minor)});
}

void Session::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (RefuseName(req, name, ENOENT)) return;
  FORWARD(OP_LOOKUP, DBL(parent), STR(name));
}

void Session::Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Session* s = Of(req);
  Napi::Env env = s->env_;
  s->Dispatch(OP_FORGET, nullptr, {DBL(ino), DBL(nlookup)});
  fuse_reply_none(req);
}

void Session::ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  Session* s = Of(req);
  Napi::Env env = s->env_;
  for (size_t i = 0; i < count; i++) s->Dispatch(OP_FORGET, nullptr, {DBL(forgets[i].ino), DBL(forgets[i].nlookup)});
  fuse_reply_none(req);
}

static double Fh(struct fuse_file_info* fi) { return fi ? static_cast<double>(fi->fh) : -1; }

void Session::Getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_GETATTR, DBL(ino), DBL(Fh(fi)));
}

// setattr: (ino, toSet FUSE_SET_ATTR_* bits, fh or -1, mode, uid, gid, size, atime s, atime ns, mtime s, mtime ns)
void Session::Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* a, int to_set, struct fuse_file_info* fi) {
  FORWARD(OP_SETATTR, DBL(ino), DBL(to_set), DBL(Fh(fi)), DBL(a->st_mode), DBL(a->st_uid), DBL(a->st_gid),
                                DBL(a->st_size), DBL(a->st_atim.tv_sec), DBL(a->st_atim.tv_nsec), DBL(a->st_mtim.tv_sec),
                                DBL(a->st_mtim.tv_nsec));
}

void Session::Readlink(fuse_req_t req, fuse_ino_t ino) {
  FORWARD(OP_READLINK, DBL(ino));
}

void Session::Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  if (RefuseName(req, name, EILSEQ)) return;
  FORWARD(OP_MKNOD, DBL(parent), STR(name), DBL(mode), DBL(rdev));
}

void Session::Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  if (RefuseName(req, name, EILSEQ)) return;
  FORWARD(OP_MKDIR, DBL(parent), STR(name), DBL(mode));
}

void Session::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (RefuseName(req, name, ENOENT)) return;
  FORWARD(OP_UNLINK, DBL(parent), STR(name));
}

void Session::Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (RefuseName(req, name, ENOENT)) return;
  FORWARD(OP_RMDIR, DBL(parent), STR(name));
}

void Session::Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  if (RefuseName(req, name, EILSEQ) || RefuseName(req, link, EILSEQ)) return;
  FORWARD(OP_SYMLINK, STR(link), DBL(parent), STR(name));
}

void Session::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname, unsigned int flags) {
  if (RefuseName(req, name, ENOENT) || RefuseName(req, newname, EILSEQ)) return;
  FORWARD(OP_RENAME, DBL(parent), STR(name), DBL(newparent), STR(newname), DBL(flags));
}

void Session::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  if (RefuseName(req, newname, EILSEQ)) return;
  FORWARD(OP_LINK, DBL(ino), DBL(newparent), STR(newname));
}

void Session::Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_OPEN, DBL(ino), DBL(fi->flags));
}

void Session::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  FORWARD(OP_READ, DBL(ino), DBL(fi->fh), DBL(off), DBL(size));
}

// write: (ino, fh, offset, size, payload offset in `recv` or -1, payload Buffer copy when -1, writepage, KILL_SUIDGID)
void Session::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, struct fuse_file_info* fi) {
  Session* s = Of(req);
  Napi::Env env = s->env_;
  bool inside = buf >= s->recvMem_ && buf + size <= s->recvMem_ + s->recvSize_;
  napi_value copy = inside ? env.Null() : static_cast<napi_value>(Napi::Buffer<char>::Copy(env, buf, size));
  s->Dispatch(OP_WRITE, req, {DBL(ino), DBL(fi->fh), DBL(off), DBL(size), DBL(inside ? buf - s->recvMem_ : -1), copy,
                              Napi::Boolean::New(env, fi->writepage != 0), Napi::Boolean::New(env, s->WriteKillsSuidgid())});
}

void Session::Flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_FLUSH, DBL(ino), DBL(fi->fh));
}

void Session::Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_RELEASE, DBL(ino), DBL(fi->fh));
}

void Session::Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
  FORWARD(OP_FSYNC, DBL(ino), DBL(fi->fh), DBL(datasync));
}

void Session::Opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_OPENDIR, DBL(ino), DBL(fi->flags));
}

void Session::Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  FORWARD(OP_READDIR, DBL(ino), DBL(fi->fh), DBL(off), DBL(size));
}

void Session::Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  FORWARD(OP_READDIRPLUS, DBL(ino), DBL(fi->fh), DBL(off), DBL(size));
}

void Session::Releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FORWARD(OP_RELEASEDIR, DBL(ino), DBL(fi->fh));
}

void Session::Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
  FORWARD(OP_FSYNCDIR, DBL(ino), DBL(fi->fh), DBL(datasync));
}

void Session::Statfs(fuse_req_t req, fuse_ino_t ino) {
  FORWARD(OP_STATFS, DBL(ino));
}

void Session::Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  if (RefuseName(req, name, EILSEQ)) return;
  FORWARD(OP_SETXATTR, DBL(ino), STR(name), Napi::Buffer<char>::Copy(env, value, size), DBL(flags));
}

void Session::Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (RefuseName(req, name, ENODATA)) return;
  Session* s = Of(req);
  // Asked before every write(2) by the kernel's file_remove_privs; answered here when file capabilities are off.
  if (s->answerCapability_ && strcmp(name, "security.capability") == 0) {
    s->capabilityProbes_++;
    fuse_reply_err(req, ENODATA);
    return;
  }
  Napi::Env env = s->env_;
  s->Dispatch(OP_GETXATTR, req, {DBL(ino), STR(name), DBL(size)});
}

void Session::Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  FORWARD(OP_LISTXATTR, DBL(ino), DBL(size));
}

void Session::Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (RefuseName(req, name, ENODATA)) return;
  FORWARD(OP_REMOVEXATTR, DBL(ino), STR(name));
}

void Session::Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  FORWARD(OP_ACCESS, DBL(ino), DBL(mask));
}

// create: (parent, name, mode, flags); tmpfile (a FUSE_TMPFILE, no name): (parent, mode, flags), replied as a create.
void Session::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
  if (Of(req)->tmpfile_) {
    FORWARD(OP_TMPFILE, DBL(parent), DBL(mode), DBL(fi->flags));
    return;
  }
  if (RefuseName(req, name, EILSEQ)) return;
  FORWARD(OP_CREATE, DBL(parent), STR(name), DBL(mode), DBL(fi->flags));
}

void Session::Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info* fi) {
  FORWARD(OP_FALLOCATE, DBL(ino), DBL(fi->fh), DBL(mode), DBL(offset), DBL(length));
}

void Session::Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info* fi) {
  FORWARD(OP_LSEEK, DBL(ino), DBL(fi->fh), DBL(off), DBL(whence));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("FuseSession", Session::Define(env));
  Napi::Array names = Napi::Array::New(env, OP_COUNT);
  for (uint32_t i = 0; i < OP_COUNT; i++) names.Set(i, Napi::String::New(env, kOpNames[i]));
  exports.Set("opNames", names);
  Napi::Object caps = Napi::Object::New(env);
#define CAP(n) caps.Set(#n, Napi::Number::New(env, FUSE_CAP_##n))
  CAP(ASYNC_READ); CAP(ATOMIC_O_TRUNC); CAP(AUTO_INVAL_DATA); CAP(READDIRPLUS); CAP(READDIRPLUS_AUTO);
  CAP(ASYNC_DIO); CAP(WRITEBACK_CACHE); CAP(PARALLEL_DIROPS); CAP(HANDLE_KILLPRIV); CAP(POSIX_ACL);
  CAP(CACHE_SYMLINKS); CAP(EXPLICIT_INVAL_DATA); CAP(POSIX_LOCKS); CAP(FLOCK_LOCKS); CAP(DONT_MASK);
  CAP(EXPORT_SUPPORT); CAP(IOCTL_DIR); CAP(NO_OPEN_SUPPORT); CAP(NO_OPENDIR_SUPPORT);
#undef CAP
  exports.Set("caps", caps);
  Napi::Object set = Napi::Object::New(env);
#define SA(n) set.Set(#n, Napi::Number::New(env, FUSE_SET_ATTR_##n))
  SA(MODE); SA(UID); SA(GID); SA(SIZE); SA(ATIME); SA(MTIME); SA(ATIME_NOW); SA(MTIME_NOW); SA(CTIME);
#undef SA
  // FATTR_KILL_SUIDGID, which libfuse 3.14 passes through in to_set (its mask keeps bit 11) but does not name.
  set.Set("KILL_SUIDGID", Napi::Number::New(env, FATTR_KILL_SUIDGID));
  exports.Set("setAttr", set);
  exports.Set("libfuseVersion", Napi::String::New(env, fuse_pkgversion()));
  return exports;
}

}  // namespace

NODE_API_MODULE(agentfs_fuse, InitModule)
