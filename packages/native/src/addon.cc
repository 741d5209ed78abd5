// agentfs native addon: thin, policy-free wrappers over system calls that
// Node does not expose. Every failure throws an Error shaped like Node's own
// fs errors: `code` is the errno name (libuv's spelling, e.g. "EBADF"),
// `errno` the negative errno number (as Node reports it), `syscall` the call.
//
// Platform code is compiled only where the call exists (__linux__ /
// __APPLE__); a function missing on this platform is simply not exported,
// and the TypeScript wrapper throws ENOSYS for it.

#include <napi.h>
#include <uv.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __linux__
#include <linux/falloc.h>
#endif
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <linux/fs.h>      // FICLONE
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>       // statfs, f_type
#endif

#ifdef __APPLE__
#include <sys/attr.h>
#include <sys/clonefile.h>
#include <sys/mount.h>     // statfs with f_fstypename
#include <sys/ucred.h>     // xucred, LOCAL_PEERCRED
#include <sys/param.h>
#endif

extern char** environ;

namespace {

// ---------------------------------------------------------------- errors

// errno names, first match wins: where two names share a number (ENOTSUP and
// EOPNOTSUPP on Linux, EAGAIN and EWOULDBLOCK) the first spelling listed is
// the one libuv and node:fs use. libuv's uv_err_name only knows a subset
// (no ECHILD, ENOEXEC, …), hence this table.
const struct { int num; const char* name; } kErrnoNames[] = {
#ifdef EPERM
    {EPERM, "EPERM"},
#endif
#ifdef ENOENT
    {ENOENT, "ENOENT"},
#endif
#ifdef ESRCH
    {ESRCH, "ESRCH"},
#endif
#ifdef EINTR
    {EINTR, "EINTR"},
#endif
#ifdef EIO
    {EIO, "EIO"},
#endif
#ifdef ENXIO
    {ENXIO, "ENXIO"},
#endif
#ifdef E2BIG
    {E2BIG, "E2BIG"},
#endif
#ifdef ENOEXEC
    {ENOEXEC, "ENOEXEC"},
#endif
#ifdef EBADF
    {EBADF, "EBADF"},
#endif
#ifdef ECHILD
    {ECHILD, "ECHILD"},
#endif
#ifdef EAGAIN
    {EAGAIN, "EAGAIN"},
#endif
#ifdef ENOMEM
    {ENOMEM, "ENOMEM"},
#endif
#ifdef EACCES
    {EACCES, "EACCES"},
#endif
#ifdef EFAULT
    {EFAULT, "EFAULT"},
#endif
#ifdef ENOTBLK
    {ENOTBLK, "ENOTBLK"},
#endif
#ifdef EBUSY
    {EBUSY, "EBUSY"},
#endif
#ifdef EEXIST
    {EEXIST, "EEXIST"},
#endif
#ifdef EXDEV
    {EXDEV, "EXDEV"},
#endif
#ifdef ENODEV
    {ENODEV, "ENODEV"},
#endif
#ifdef ENOTDIR
    {ENOTDIR, "ENOTDIR"},
#endif
#ifdef EISDIR
    {EISDIR, "EISDIR"},
#endif
#ifdef EINVAL
    {EINVAL, "EINVAL"},
#endif
#ifdef ENFILE
    {ENFILE, "ENFILE"},
#endif
#ifdef EMFILE
    {EMFILE, "EMFILE"},
#endif
#ifdef ENOTTY
    {ENOTTY, "ENOTTY"},
#endif
#ifdef ETXTBSY
    {ETXTBSY, "ETXTBSY"},
#endif
#ifdef EFBIG
    {EFBIG, "EFBIG"},
#endif
#ifdef ENOSPC
    {ENOSPC, "ENOSPC"},
#endif
#ifdef ESPIPE
    {ESPIPE, "ESPIPE"},
#endif
#ifdef EROFS
    {EROFS, "EROFS"},
#endif
#ifdef EMLINK
    {EMLINK, "EMLINK"},
#endif
#ifdef EPIPE
    {EPIPE, "EPIPE"},
#endif
#ifdef EDOM
    {EDOM, "EDOM"},
#endif
#ifdef ERANGE
    {ERANGE, "ERANGE"},
#endif
#ifdef EDEADLK
    {EDEADLK, "EDEADLK"},
#endif
#ifdef ENAMETOOLONG
    {ENAMETOOLONG, "ENAMETOOLONG"},
#endif
#ifdef ENOLCK
    {ENOLCK, "ENOLCK"},
#endif
#ifdef ENOSYS
    {ENOSYS, "ENOSYS"},
#endif
#ifdef ENOTEMPTY
    {ENOTEMPTY, "ENOTEMPTY"},
#endif
#ifdef ELOOP
    {ELOOP, "ELOOP"},
#endif
#ifdef ENOMSG
    {ENOMSG, "ENOMSG"},
#endif
#ifdef EIDRM
    {EIDRM, "EIDRM"},
#endif
#ifdef ENOSTR
    {ENOSTR, "ENOSTR"},
#endif
#ifdef ENODATA
    {ENODATA, "ENODATA"},
#endif
#ifdef ETIME
    {ETIME, "ETIME"},
#endif
#ifdef ENOSR
    {ENOSR, "ENOSR"},
#endif
#ifdef EREMOTE
    {EREMOTE, "EREMOTE"},
#endif
#ifdef ENOLINK
    {ENOLINK, "ENOLINK"},
#endif
#ifdef EPROTO
    {EPROTO, "EPROTO"},
#endif
#ifdef EMULTIHOP
    {EMULTIHOP, "EMULTIHOP"},
#endif
#ifdef EBADMSG
    {EBADMSG, "EBADMSG"},
#endif
#ifdef EOVERFLOW
    {EOVERFLOW, "EOVERFLOW"},
#endif
#ifdef EILSEQ
    {EILSEQ, "EILSEQ"},
#endif
#ifdef EUSERS
    {EUSERS, "EUSERS"},
#endif
#ifdef ENOTSOCK
    {ENOTSOCK, "ENOTSOCK"},
#endif
#ifdef EDESTADDRREQ
    {EDESTADDRREQ, "EDESTADDRREQ"},
#endif
#ifdef EMSGSIZE
    {EMSGSIZE, "EMSGSIZE"},
#endif
#ifdef EPROTOTYPE
    {EPROTOTYPE, "EPROTOTYPE"},
#endif
#ifdef ENOPROTOOPT
    {ENOPROTOOPT, "ENOPROTOOPT"},
#endif
#ifdef EPROTONOSUPPORT
    {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
#endif
#ifdef ESOCKTNOSUPPORT
    {ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"},
#endif
#ifdef ENOTSUP
    {ENOTSUP, "ENOTSUP"},
#endif
#ifdef EOPNOTSUPP
    {EOPNOTSUPP, "EOPNOTSUPP"},
#endif
#ifdef EPFNOSUPPORT
    {EPFNOSUPPORT, "EPFNOSUPPORT"},
#endif
#ifdef EAFNOSUPPORT
    {EAFNOSUPPORT, "EAFNOSUPPORT"},
#endif
#ifdef EADDRINUSE
    {EADDRINUSE, "EADDRINUSE"},
#endif
#ifdef EADDRNOTAVAIL
    {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
#endif
#ifdef ENETDOWN
    {ENETDOWN, "ENETDOWN"},
#endif
#ifdef ENETUNREACH
    {ENETUNREACH, "ENETUNREACH"},
#endif
#ifdef ENETRESET
    {ENETRESET, "ENETRESET"},
#endif
#ifdef ECONNABORTED
    {ECONNABORTED, "ECONNABORTED"},
#endif
#ifdef ECONNRESET
    {ECONNRESET, "ECONNRESET"},
#endif
#ifdef ENOBUFS
    {ENOBUFS, "ENOBUFS"},
#endif
#ifdef EISCONN
    {EISCONN, "EISCONN"},
#endif
#ifdef ENOTCONN
    {ENOTCONN, "ENOTCONN"},
#endif
#ifdef ESHUTDOWN
    {ESHUTDOWN, "ESHUTDOWN"},
#endif
#ifdef ETOOMANYREFS
    {ETOOMANYREFS, "ETOOMANYREFS"},
#endif
#ifdef ETIMEDOUT
    {ETIMEDOUT, "ETIMEDOUT"},
#endif
#ifdef ECONNREFUSED
    {ECONNREFUSED, "ECONNREFUSED"},
#endif
#ifdef EHOSTDOWN
    {EHOSTDOWN, "EHOSTDOWN"},
#endif
#ifdef EHOSTUNREACH
    {EHOSTUNREACH, "EHOSTUNREACH"},
#endif
#ifdef EALREADY
    {EALREADY, "EALREADY"},
#endif
#ifdef EINPROGRESS
    {EINPROGRESS, "EINPROGRESS"},
#endif
#ifdef ESTALE
    {ESTALE, "ESTALE"},
#endif
#ifdef EDQUOT
    {EDQUOT, "EDQUOT"},
#endif
#ifdef ECANCELED
    {ECANCELED, "ECANCELED"},
#endif
#ifdef EOWNERDEAD
    {EOWNERDEAD, "EOWNERDEAD"},
#endif
#ifdef ENOTRECOVERABLE
    {ENOTRECOVERABLE, "ENOTRECOVERABLE"},
#endif
#ifdef ENOMEDIUM
    {ENOMEDIUM, "ENOMEDIUM"},
#endif
#ifdef EMEDIUMTYPE
    {EMEDIUMTYPE, "EMEDIUMTYPE"},
#endif
#ifdef EKEYEXPIRED
    {EKEYEXPIRED, "EKEYEXPIRED"},
#endif
#ifdef EKEYREJECTED
    {EKEYREJECTED, "EKEYREJECTED"},
#endif
#ifdef EKEYREVOKED
    {EKEYREVOKED, "EKEYREVOKED"},
#endif
#ifdef ENOKEY
    {ENOKEY, "ENOKEY"},
#endif
#ifdef ERFKILL
    {ERFKILL, "ERFKILL"},
#endif
#ifdef EHWPOISON
    {EHWPOISON, "EHWPOISON"},
#endif
#ifdef EBADFD
    {EBADFD, "EBADFD"},
#endif
#ifdef EREMOTEIO
    {EREMOTEIO, "EREMOTEIO"},
#endif
#ifdef EUCLEAN
    {EUCLEAN, "EUCLEAN"},
#endif
#ifdef ENOTUNIQ
    {ENOTUNIQ, "ENOTUNIQ"},
#endif
#ifdef ECHRNG
    {ECHRNG, "ECHRNG"},
#endif
#ifdef EL2NSYNC
    {EL2NSYNC, "EL2NSYNC"},
#endif
#ifdef EL3HLT
    {EL3HLT, "EL3HLT"},
#endif
#ifdef EL3RST
    {EL3RST, "EL3RST"},
#endif
#ifdef ELNRNG
    {ELNRNG, "ELNRNG"},
#endif
#ifdef EUNATCH
    {EUNATCH, "EUNATCH"},
#endif
#ifdef ENOCSI
    {ENOCSI, "ENOCSI"},
#endif
#ifdef EL2HLT
    {EL2HLT, "EL2HLT"},
#endif
#ifdef EBADE
    {EBADE, "EBADE"},
#endif
#ifdef EBADR
    {EBADR, "EBADR"},
#endif
#ifdef EXFULL
    {EXFULL, "EXFULL"},
#endif
#ifdef ENOANO
    {ENOANO, "ENOANO"},
#endif
#ifdef EBADRQC
    {EBADRQC, "EBADRQC"},
#endif
#ifdef EBADSLT
    {EBADSLT, "EBADSLT"},
#endif
#ifdef EBFONT
    {EBFONT, "EBFONT"},
#endif
#ifdef ENONET
    {ENONET, "ENONET"},
#endif
#ifdef ENOPKG
    {ENOPKG, "ENOPKG"},
#endif
#ifdef EADV
    {EADV, "EADV"},
#endif
#ifdef ESRMNT
    {ESRMNT, "ESRMNT"},
#endif
#ifdef ECOMM
    {ECOMM, "ECOMM"},
#endif
#ifdef EDOTDOT
    {EDOTDOT, "EDOTDOT"},
#endif
#ifdef ELIBACC
    {ELIBACC, "ELIBACC"},
#endif
#ifdef ELIBBAD
    {ELIBBAD, "ELIBBAD"},
#endif
#ifdef ELIBSCN
    {ELIBSCN, "ELIBSCN"},
#endif
#ifdef ELIBMAX
    {ELIBMAX, "ELIBMAX"},
#endif
#ifdef ELIBEXEC
    {ELIBEXEC, "ELIBEXEC"},
#endif
#ifdef ERESTART
    {ERESTART, "ERESTART"},
#endif
#ifdef ESTRPIPE
    {ESTRPIPE, "ESTRPIPE"},
#endif
#ifdef ENOTNAM
    {ENOTNAM, "ENOTNAM"},
#endif
#ifdef ENAVAIL
    {ENAVAIL, "ENAVAIL"},
#endif
#ifdef EISNAM
    {EISNAM, "EISNAM"},
#endif
#ifdef EPROCLIM
    {EPROCLIM, "EPROCLIM"},
#endif
#ifdef EBADRPC
    {EBADRPC, "EBADRPC"},
#endif
#ifdef ERPCMISMATCH
    {ERPCMISMATCH, "ERPCMISMATCH"},
#endif
#ifdef EPROGUNAVAIL
    {EPROGUNAVAIL, "EPROGUNAVAIL"},
#endif
#ifdef EPROGMISMATCH
    {EPROGMISMATCH, "EPROGMISMATCH"},
#endif
#ifdef EPROCUNAVAIL
    {EPROCUNAVAIL, "EPROCUNAVAIL"},
#endif
#ifdef EFTYPE
    {EFTYPE, "EFTYPE"},
#endif
#ifdef EAUTH
    {EAUTH, "EAUTH"},
#endif
#ifdef ENEEDAUTH
    {ENEEDAUTH, "ENEEDAUTH"},
#endif
#ifdef EPWROFF
    {EPWROFF, "EPWROFF"},
#endif
#ifdef EDEVERR
    {EDEVERR, "EDEVERR"},
#endif
#ifdef EBADEXEC
    {EBADEXEC, "EBADEXEC"},
#endif
#ifdef EBADARCH
    {EBADARCH, "EBADARCH"},
#endif
#ifdef ESHLIBVERS
    {ESHLIBVERS, "ESHLIBVERS"},
#endif
#ifdef EBADMACHO
    {EBADMACHO, "EBADMACHO"},
#endif
#ifdef ENOATTR
    {ENOATTR, "ENOATTR"},
#endif
#ifdef ENOPOLICY
    {ENOPOLICY, "ENOPOLICY"},
#endif
#ifdef EQFULL
    {EQFULL, "EQFULL"},
#endif
};

std::string ErrnoName(int err) {
  for (const auto& e : kErrnoNames)
    if (e.num == err) return e.name;
  return "E" + std::to_string(err);
}

std::string ErrnoMessage(int err) {
  // libuv's lowercase wording where it has one (as node:fs prints), else strerror.
  const char* name = uv_err_name(-err);
  // libuv words ENOTSUP "operation not supported on socket", misleading for
  // FICLONE or clonefile; strerror's wording is used for it instead.
  if (err != ENOTSUP && name != nullptr && strncmp(name, "Unknown", 7) != 0) return uv_strerror(-err);
  std::string m = strerror(err);
  if (!m.empty()) m[0] = static_cast<char>(tolower(static_cast<unsigned char>(m[0])));
  return m;
}

Napi::Error MakeErrno(Napi::Env env, int err, const char* syscall) {
  std::string code = ErrnoName(err);
  std::string msg = code + ": " + ErrnoMessage(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  MakeErrno(env, err, syscall).ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}

// Argument helpers. Each returns false (with a pending TypeError) on bad input.
bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t* out, const char* what) {
  if (i < info.Length()) {
    if (info[i].IsNumber()) {
      double d = info[i].As<Napi::Number>().DoubleValue();
      if (d == static_cast<double>(static_cast<int64_t>(d))) {
        *out = static_cast<int64_t>(d);
        return true;
      }
    } else if (info[i].IsBigInt()) {
      bool lossless = false;
      *out = info[i].As<Napi::BigInt>().Int64Value(&lossless);
      if (lossless) return true;
    }
  }
  std::string m = std::string(what) + " must be an integer";
  ThrowType(info.Env(), m.c_str());
  return false;
}

bool ArgFd(const Napi::CallbackInfo& info, size_t i, int* out, const char* what = "fd") {
  int64_t v;
  if (!ArgInt(info, i, &v, what)) return false;
  if (v < -1 || v > INT32_MAX) {
    std::string m = std::string(what) + " is out of range";
    ThrowType(info.Env(), m.c_str());
    return false;
  }
  *out = static_cast<int>(v);
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out, const char* what) {
  if (i < info.Length() && info[i].IsString()) {
    *out = info[i].As<Napi::String>().Utf8Value();
    if (out->find('\0') != std::string::npos && std::string(what) != "socket path") {
      std::string m = std::string(what) + " must not contain NUL bytes";
      ThrowType(info.Env(), m.c_str());
      return false;
    }
    return true;
  }
  std::string m = std::string(what) + " must be a string";
  ThrowType(info.Env(), m.c_str());
  return false;
}

bool ArgStringArray(const Napi::CallbackInfo& info, size_t i, std::vector<std::string>* out,
                    const char* what) {
  if (i >= info.Length() || !info[i].IsArray()) {
    std::string m = std::string(what) + " must be an array of strings";
    ThrowType(info.Env(), m.c_str());
    return false;
  }
  Napi::Array a = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) {
      std::string m = std::string(what) + " must be an array of strings";
      ThrowType(info.Env(), m.c_str());
      return false;
    }
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos) {
      std::string m = std::string(what) + " entries must not contain NUL bytes";
      ThrowType(info.Env(), m.c_str());
      return false;
    }
    out->push_back(std::move(s));
  }
  return true;
}

bool ArgIntArray(const Napi::CallbackInfo& info, size_t i, std::vector<int>* out, const char* what) {
  if (i >= info.Length() || !info[i].IsArray()) {
    std::string m = std::string(what) + " must be an array of integers";
    ThrowType(info.Env(), m.c_str());
    return false;
  }
  Napi::Array a = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) {
      std::string m = std::string(what) + " must be an array of integers";
      ThrowType(info.Env(), m.c_str());
      return false;
    }
    out->push_back(v.As<Napi::Number>().Int32Value());
  }
  return true;
}

// ---------------------------------------------------------------- memfd, ftruncate, seals

#ifdef __linux__
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name;
  int64_t flags;
  if (!ArgString(info, 0, &name, "name") || !ArgInt(info, 1, &flags, "flags")) return Napi::Value();
  int fd = static_cast<int>(syscall(SYS_memfd_create, name.c_str(), static_cast<unsigned>(flags)));
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "memfd_create");
    return Napi::Value();
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  int fd;
  int64_t seals;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &seals, "seals")) return Napi::Value();
  if (fcntl(fd, F_ADD_SEALS, static_cast<int>(seals)) < 0) {
    ThrowErrno(info.Env(), errno, "fcntl(F_ADD_SEALS)");
    return Napi::Value();
  }
  return info.Env().Undefined();
}

Napi::Value GetSeals(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return Napi::Value();
  int r = fcntl(fd, F_GET_SEALS);
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "fcntl(F_GET_SEALS)");
    return Napi::Value();
  }
  return Napi::Number::New(info.Env(), r);
}
#endif

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd;
  int64_t size;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &size, "size")) return Napi::Value();
  int r;
  do {
    r = ftruncate(fd, static_cast<off_t>(size));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "ftruncate");
    return Napi::Value();
  }
  return info.Env().Undefined();
}

#ifdef __linux__
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int fd;
  int64_t mode, offset, length;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &mode, "mode") || !ArgInt(info, 2, &offset, "offset") || !ArgInt(info, 3, &length, "length")) return Napi::Value();
  int r;
  do {
    r = fallocate(fd, static_cast<int>(mode), static_cast<off_t>(offset), static_cast<off_t>(length));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "fallocate");
    return Napi::Value();
  }
  return info.Env().Undefined();
}
#endif

Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return Napi::Value();
  bool on = info.Length() < 2 || info[1].ToBoolean().Value();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) < 0) {
    ThrowErrno(info.Env(), errno, "fcntl(F_SETFD)");
    return Napi::Value();
  }
  return info.Env().Undefined();
}

Napi::Value GetCloexec(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return Napi::Value();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) {
    ThrowErrno(info.Env(), errno, "fcntl(F_GETFD)");
    return Napi::Value();
  }
  return Napi::Boolean::New(info.Env(), (flags & FD_CLOEXEC) != 0);
}

// pipe(flags) -> [readFd, writeFd]; flags: bit 1 = cloexec, bit 2 = nonblock (as for sockets)
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t flags;
  if (!ArgInt(info, 0, &flags, "flags")) return Napi::Value();
  int p[2];
#ifdef __linux__
  int f = 0;
  if (flags & 1) f |= O_CLOEXEC;
  if (flags & 2) f |= O_NONBLOCK;
  if (pipe2(p, f) < 0) {
    ThrowErrno(env, errno, "pipe2");
    return Napi::Value();
  }
#else
  if (pipe(p) < 0) {
    ThrowErrno(env, errno, "pipe");
    return Napi::Value();
  }
  for (int i = 0; i < 2; i++) {
    if ((flags & 1) && fcntl(p[i], F_SETFD, FD_CLOEXEC) < 0) {
      int e = errno;
      close(p[0]);
      close(p[1]);
      ThrowErrno(env, e, "fcntl");
      return Napi::Value();
    }
    if (flags & 2) {
      int fl = fcntl(p[i], F_GETFL);
      if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        ThrowErrno(env, e, "fcntl");
        return Napi::Value();
      }
    }
  }
#endif
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, p[0]));
  a.Set(1u, Napi::Number::New(env, p[1]));
  return a;
}

// ---------------------------------------------------------------- mmap

struct Mapping {
  void* addr;
  size_t len;
  bool unmapped;
};

std::mutex g_map_mu;
std::unordered_map<void*, Mapping*> g_mappings;

void FinalizeMapping(Napi::Env /*env*/, void* /*data*/, Mapping* m) {
  std::lock_guard<std::mutex> lock(g_map_mu);
  if (!m->unmapped) {
    munmap(m->addr, m->len);
    m->unmapped = true;
  }
  auto it = g_mappings.find(m->addr);
  if (it != g_mappings.end() && it->second == m) g_mappings.erase(it);
  delete m;
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t length, prot, flags, offset;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &length, "length") || !ArgInt(info, 2, &prot, "prot") ||
      !ArgInt(info, 3, &flags, "flags") || !ArgInt(info, 4, &offset, "offset"))
    return Napi::Value();
  if (length <= 0) {
    ThrowErrno(env, EINVAL, "mmap");
    return Napi::Value();
  }
  void* addr = mmap(nullptr, static_cast<size_t>(length), static_cast<int>(prot), static_cast<int>(flags), fd,
                    static_cast<off_t>(offset));
  if (addr == MAP_FAILED) {
    ThrowErrno(env, errno, "mmap");
    return Napi::Value();
  }
  Mapping* m = new Mapping{addr, static_cast<size_t>(length), false};
  {
    std::lock_guard<std::mutex> lock(g_map_mu);
    g_mappings[addr] = m;
  }
  napi_value buf;
  napi_status st = napi_create_external_buffer(
      env, m->len, addr,
      [](napi_env e, void* data, void* hint) { FinalizeMapping(Napi::Env(e), data, static_cast<Mapping*>(hint)); },
      m, &buf);
  if (st != napi_ok) {
    {
      std::lock_guard<std::mutex> lock(g_map_mu);
      g_mappings.erase(addr);
    }
    munmap(addr, m->len);
    delete m;
    Napi::Error::New(env, "napi_create_external_buffer failed (external buffers not allowed?)")
        .ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return Napi::Value(env, buf);
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    ThrowType(env, "buffer must be a Buffer returned by mmap()");
    return Napi::Value();
  }
  napi_value ab;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, info[0], nullptr, nullptr, nullptr, &ab, &byte_offset) != napi_ok) {
    ThrowType(env, "buffer must be a Buffer returned by mmap()");
    return Napi::Value();
  }
  void* base = nullptr;
  size_t ab_len = 0;
  napi_get_arraybuffer_info(env, ab, &base, &ab_len);
  {
    std::lock_guard<std::mutex> lock(g_map_mu);
    auto it = g_mappings.find(base);
    if (base == nullptr || it == g_mappings.end()) {
      // Not a live mapping of ours (never mapped, or already unmapped).
      ThrowErrno(env, EINVAL, "munmap");
      return Napi::Value();
    }
    Mapping* m = it->second;
    if (munmap(m->addr, m->len) < 0) {
      ThrowErrno(env, errno, "munmap");
      return Napi::Value();
    }
    m->unmapped = true;
    g_mappings.erase(it);
  }
  // Detach so every view of the mapping becomes zero-length instead of
  // pointing at unmapped memory. The finalizer (possibly run now) only frees
  // the bookkeeping since `unmapped` is set.
  napi_detach_arraybuffer(env, ab);
  return env.Undefined();
}

// ---------------------------------------------------------------- fexecve / execveat spawn

// spawnExec(fd, argv, envp|null, stdio[3], inheritFds[], useExecveat) -> pid
//
// The child: resets signal dispositions and the signal mask (Node ignores
// SIGPIPE, and ignored dispositions survive exec), installs the stdio fds as
// 0/1/2 (dup2 clears FD_CLOEXEC; an fd already in place gets its FD_CLOEXEC
// cleared explicitly), clears FD_CLOEXEC on `inheritFds`, then calls
// fexecve(fd) or execveat(fd, "", AT_EMPTY_PATH). If exec fails, the errno is
// written to a close-on-exec pipe and the parent throws it; a successful exec
// closes the pipe, so the parent reads EOF.
// Linux only: macOS has no fexecve(3) (nor execveat).
#ifdef __linux__
Napi::Value SpawnExec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::vector<std::string> argv_s, envp_s;
  std::vector<int> stdio, inherit;
  if (!ArgFd(info, 0, &fd) || !ArgStringArray(info, 1, &argv_s, "argv")) return Napi::Value();
  bool have_env = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined();
  if (have_env && !ArgStringArray(info, 2, &envp_s, "envp")) return Napi::Value();
  if (!ArgIntArray(info, 3, &stdio, "stdio") || !ArgIntArray(info, 4, &inherit, "inheritFds")) return Napi::Value();
  if (stdio.size() != 3) {
    ThrowType(env, "stdio must have exactly three fds");
    return Napi::Value();
  }
  bool use_execveat = info.Length() > 5 && info[5].ToBoolean().Value();

  // Everything the child needs is prepared before fork(): after fork in a
  // multi-threaded process only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  char** envpp = environ;
  if (have_env) {
    for (auto& s : envp_s) envp.push_back(const_cast<char*>(s.c_str()));
    envp.push_back(nullptr);
    envpp = envp.data();
  }

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) {
    ThrowErrno(env, errno, "pipe2");
    return Napi::Value();
  }

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(errpipe[0]);
    close(errpipe[1]);
    ThrowErrno(env, e, "fork");
    return Napi::Value();
  }
  if (pid == 0) {
    // ---- child: async-signal-safe calls only
    int wfd = errpipe[1];
    int err = 0;
    for (int s = 1; s < NSIG; s++) {
      if (s == SIGKILL || s == SIGSTOP) continue;
      signal(s, SIG_DFL);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);

    int src[3] = {stdio[0], stdio[1], stdio[2]};
    int exec_fd = fd;
    // Move every source that sits in 0..2 (but not already in its own slot)
    // above 2 first, so installing one slot cannot clobber another's source.
    for (int i = 0; i < 3; i++) {
      if (src[i] >= 0 && src[i] <= 2 && src[i] != i) {
        int n = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
        if (n < 0) { err = errno; goto fail; }
        int old = src[i];
        for (int j = 0; j < 3; j++) if (src[j] == old) src[j] = n;
        if (exec_fd == old) exec_fd = n;
      }
    }
    if (exec_fd >= 0 && exec_fd <= 2) {
      int n = fcntl(exec_fd, F_DUPFD_CLOEXEC, 3);
      if (n < 0) { err = errno; goto fail; }
      exec_fd = n;
    }
    if (wfd <= 2) {
      int n = fcntl(wfd, F_DUPFD_CLOEXEC, 3);
      if (n < 0) { err = errno; goto fail; }
      wfd = n;
    }
    for (int i = 0; i < 3; i++) {
      if (src[i] < 0) continue;  // -1: leave that slot as inherited
      if (src[i] == i) {
        int fl = fcntl(i, F_GETFD);
        if (fl < 0 || fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0) { err = errno; goto fail; }
      } else if (dup2(src[i], i) < 0) {
        err = errno;
        goto fail;
      }
    }
    for (size_t k = 0; k < inherit.size(); k++) {
      int f = inherit[k];
      if (f == fd) f = exec_fd;
      int fl = fcntl(f, F_GETFD);
      if (fl < 0 || fcntl(f, F_SETFD, fl & ~FD_CLOEXEC) < 0) { err = errno; goto fail; }
    }
    if (use_execveat) {
      syscall(SYS_execveat, exec_fd, "", argv.data(), envpp, AT_EMPTY_PATH);
    } else {
      fexecve(exec_fd, argv.data(), envpp);
    }
    err = errno;
  fail:
    {
      ssize_t w;
      do {
        w = write(wfd, &err, sizeof err);
      } while (w < 0 && errno == EINTR);
    }
    _exit(127);
  }

  // ---- parent
  close(errpipe[1]);
  int child_err = 0;
  ssize_t n;
  do {
    n = read(errpipe[0], &child_err, sizeof child_err);
  } while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_err)) {
    // exec failed; reap the child (it _exit(127)s right after writing).
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ThrowErrno(env, child_err, use_execveat ? "execveat" : "fexecve");
    return Napi::Value();
  }
  return Napi::Number::New(env, pid);
}
#endif  // __linux__

// waitpid(pid, options) -> null (WNOHANG and not yet changed) | {pid, exitCode, signal, status}
Napi::Value Waitpid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t pid, options = 0;
  if (!ArgInt(info, 0, &pid, "pid")) return Napi::Value();
  if (info.Length() > 1 && !ArgInt(info, 1, &options, "options")) return Napi::Value();
  int status = 0;
  pid_t r;
  do {
    r = waitpid(static_cast<pid_t>(pid), &status, static_cast<int>(options));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    ThrowErrno(env, errno, "waitpid");
    return Napi::Value();
  }
  if (r == 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, r));
  o.Set("status", Napi::Number::New(env, status));
  if (WIFEXITED(status)) {
    o.Set("exitCode", Napi::Number::New(env, WEXITSTATUS(status)));
    o.Set("signal", env.Null());
  } else if (WIFSIGNALED(status)) {
    o.Set("exitCode", env.Null());
    o.Set("signal", Napi::Number::New(env, WTERMSIG(status)));
  } else {
    // stopped / continued (only with WUNTRACED / WCONTINUED)
    o.Set("exitCode", env.Null());
    o.Set("signal", WIFSTOPPED(status) ? Napi::Number::New(env, WSTOPSIG(status)) : env.Null());
    o.Set("stopped", Napi::Boolean::New(env, WIFSTOPPED(status)));
  }
  return o;
}

// ---------------------------------------------------------------- unix sockets

[[maybe_unused]] bool SetFdFlags(int fd, bool cloexec, bool nonblock) {
  if (cloexec && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return false;
  if (nonblock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  }
  return true;
}

// Socket flags from JS: bit 1 = cloexec, bit 2 = nonblock.
constexpr int kCloexec = 1;
constexpr int kNonblock = 2;

Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t type, flags;
  if (!ArgInt(info, 0, &type, "type") || !ArgInt(info, 1, &flags, "flags")) return Napi::Value();
  int sv[2];
  int t = static_cast<int>(type);
#ifdef __linux__
  if (flags & kCloexec) t |= SOCK_CLOEXEC;
  if (flags & kNonblock) t |= SOCK_NONBLOCK;
#endif
  if (socketpair(AF_UNIX, t, 0, sv) < 0) {
    ThrowErrno(env, errno, "socketpair");
    return Napi::Value();
  }
#ifndef __linux__
  for (int i = 0; i < 2; i++) {
    if (!SetFdFlags(sv[i], flags & kCloexec, flags & kNonblock)) {
      int e = errno;
      close(sv[0]);
      close(sv[1]);
      ThrowErrno(env, e, "fcntl");
      return Napi::Value();
    }
  }
#endif
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, sv[0]));
  a.Set(1u, Napi::Number::New(env, sv[1]));
  return a;
}

Napi::Value Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t type, flags;
  if (!ArgInt(info, 0, &type, "type") || !ArgInt(info, 1, &flags, "flags")) return Napi::Value();
  int t = static_cast<int>(type);
#ifdef __linux__
  if (flags & kCloexec) t |= SOCK_CLOEXEC;
  if (flags & kNonblock) t |= SOCK_NONBLOCK;
#endif
  int fd = socket(AF_UNIX, t, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket");
    return Napi::Value();
  }
#ifndef __linux__
  if (!SetFdFlags(fd, flags & kCloexec, flags & kNonblock)) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "fcntl");
    return Napi::Value();
  }
#endif
  return Napi::Number::New(env, fd);
}

// A path starting with "\0" names a Linux abstract socket.
bool MakeAddr(Napi::Env env, const std::string& path, sockaddr_un* addr, socklen_t* len, const char* sc) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) {
    ThrowErrno(env, path.empty() ? EINVAL : ENAMETOOLONG, sc);
    return false;
  }
  memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '\0' ? 0 : 1));
  return true;
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string path;
  if (!ArgFd(info, 0, &fd) || !ArgString(info, 1, &path, "socket path")) return Napi::Value();
  sockaddr_un addr;
  socklen_t len;
  if (!MakeAddr(env, path, &addr, &len, "bind")) return Napi::Value();
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    ThrowErrno(env, errno, "bind");
    return Napi::Value();
  }
  return env.Undefined();
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string path;
  if (!ArgFd(info, 0, &fd) || !ArgString(info, 1, &path, "socket path")) return Napi::Value();
  sockaddr_un addr;
  socklen_t len;
  if (!MakeAddr(env, path, &addr, &len, "connect")) return Napi::Value();
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    ThrowErrno(env, errno, "connect");
    return Napi::Value();
  }
  return env.Undefined();
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t backlog;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &backlog, "backlog")) return Napi::Value();
  if (listen(fd, static_cast<int>(backlog)) < 0) {
    ThrowErrno(env, errno, "listen");
    return Napi::Value();
  }
  return env.Undefined();
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t flags;
  if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, &flags, "flags")) return Napi::Value();
  int c;
#ifdef __linux__
  int f = 0;
  if (flags & kCloexec) f |= SOCK_CLOEXEC;
  if (flags & kNonblock) f |= SOCK_NONBLOCK;
  do {
    c = accept4(fd, nullptr, nullptr, f);
  } while (c < 0 && errno == EINTR);
#else
  do {
    c = accept(fd, nullptr, nullptr);
  } while (c < 0 && errno == EINTR);
  if (c >= 0 && !SetFdFlags(c, flags & kCloexec, flags & kNonblock)) {
    int e = errno;
    close(c);
    ThrowErrno(env, e, "fcntl");
    return Napi::Value();
  }
#endif
  if (c < 0) {
    ThrowErrno(env, errno, "accept");
    return Napi::Value();
  }
  return Napi::Number::New(env, c);
}

// sendFds(sock, fds[], data: Buffer, flags) -> bytes of data sent
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  std::vector<int> fds;
  int64_t flags = 0;
  if (!ArgFd(info, 0, &sock, "socketFd") || !ArgIntArray(info, 1, &fds, "fds")) return Napi::Value();
  if (info.Length() < 3 || !info[2].IsTypedArray()) {
    ThrowType(env, "data must be a Buffer");
    return Napi::Value();
  }
  if (info.Length() > 3 && !ArgInt(info, 3, &flags, "flags")) return Napi::Value();
  Napi::TypedArray ta = info[2].As<Napi::TypedArray>();
  uint8_t* data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  size_t data_len = ta.ByteLength();

  iovec iov;
  iov.iov_base = data;
  iov.iov_len = data_len;
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = static_cast<socklen_t>(control.size());
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
  }
  int f = static_cast<int>(flags);
#ifdef MSG_NOSIGNAL
  f |= MSG_NOSIGNAL;
#endif
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, f);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "sendmsg");
    return Napi::Value();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvFds(sock, maxData, maxFds, flags) -> {data: Buffer, fds: number[], truncated: boolean}
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  int64_t max_data, max_fds, flags;
  if (!ArgFd(info, 0, &sock, "socketFd") || !ArgInt(info, 1, &max_data, "maxData") ||
      !ArgInt(info, 2, &max_fds, "maxFds") || !ArgInt(info, 3, &flags, "flags"))
    return Napi::Value();
  if (max_data < 1 || max_fds < 0 || max_fds > 253) {
    ThrowErrno(env, EINVAL, "recvmsg");
    return Napi::Value();
  }
  std::vector<uint8_t> buf(static_cast<size_t>(max_data));
  iovec iov;
  iov.iov_base = buf.data();
  iov.iov_len = buf.size();
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (max_fds > 0 ? max_fds : 1)), 0);
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = static_cast<socklen_t>(control.size());
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, static_cast<int>(flags));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "recvmsg");
    return Napi::Value();
  }
  Napi::Array fds = Napi::Array::New(env);
  uint32_t k = 0;
  bool extra = false;  // CMSG_SPACE rounding can admit more fds than asked for: close those
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      size_t cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* p = CMSG_DATA(cm);
      for (size_t i = 0; i < cnt; i++) {
        int f;
        memcpy(&f, p + i * sizeof(int), sizeof f);
        if (k < static_cast<uint32_t>(max_fds)) {
          fds.Set(k++, Napi::Number::New(env, f));
        } else {
          close(f);
          extra = true;
        }
      }
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  o.Set("fds", fds);
  o.Set("truncated", Napi::Boolean::New(env, extra || (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0));
  return o;
}

Napi::Value GetPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd, "socketFd")) return Napi::Value();
  Napi::Object o = Napi::Object::New(env);
#ifdef __linux__
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    ThrowErrno(env, errno, "getsockopt(SO_PEERCRED)");
    return Napi::Value();
  }
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
#elif defined(__APPLE__)
  struct xucred xc;
  socklen_t len = sizeof xc;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xc, &len) < 0) {
    ThrowErrno(env, errno, "getsockopt(LOCAL_PEERCRED)");
    return Napi::Value();
  }
  pid_t pid = 0;
  len = sizeof pid;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) < 0) {
    ThrowErrno(env, errno, "getsockopt(LOCAL_PEERPID)");
    return Napi::Value();
  }
  o.Set("pid", Napi::Number::New(env, pid));
  o.Set("uid", Napi::Number::New(env, xc.cr_uid));
  o.Set("gid", Napi::Number::New(env, xc.cr_ngroups > 0 ? xc.cr_groups[0] : 0));
#else
  ThrowErrno(env, ENOSYS, "getpeercred");
  return Napi::Value();
#endif
  return o;
}

// ---------------------------------------------------------------- reflinks, statfs

#ifdef __linux__
Napi::Value Ficlone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int src, dst;
  if (!ArgFd(info, 0, &src, "srcFd") || !ArgFd(info, 1, &dst, "dstFd")) return Napi::Value();
  int r;
  do {
    r = ioctl(dst, FICLONE, src);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    ThrowErrno(env, errno, "ioctl(FICLONE)");
    return Napi::Value();
  }
  return env.Undefined();
}
#endif

#ifdef __APPLE__
Napi::Value Clonefile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src, dst;
  int64_t flags = 0;
  if (!ArgString(info, 0, &src, "src") || !ArgString(info, 1, &dst, "dst")) return Napi::Value();
  if (info.Length() > 2 && !ArgInt(info, 2, &flags, "flags")) return Napi::Value();
  if (clonefile(src.c_str(), dst.c_str(), static_cast<uint32_t>(flags)) < 0) {
    ThrowErrno(env, errno, "clonefile");
    return Napi::Value();
  }
  return env.Undefined();
}
#endif

Napi::Value Statfs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, &path, "path")) return Napi::Value();
  struct statfs s;
  int r;
  do {
    r = statfs(path.c_str(), &s);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    Napi::Error e = MakeErrno(env, errno, "statfs");
    e.Set("path", Napi::String::New(env, path));
    e.Set("message", Napi::String::New(env, e.Message() + " '" + path + "'"));
    e.ThrowAsJavaScriptException();
    return Napi::Value();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(s.f_type))));
  o.Set("bsize", Napi::Number::New(env, static_cast<double>(s.f_bsize)));
  o.Set("blocks", Napi::Number::New(env, static_cast<double>(s.f_blocks)));
  o.Set("bfree", Napi::Number::New(env, static_cast<double>(s.f_bfree)));
  o.Set("bavail", Napi::Number::New(env, static_cast<double>(s.f_bavail)));
  o.Set("files", Napi::Number::New(env, static_cast<double>(s.f_files)));
  o.Set("ffree", Napi::Number::New(env, static_cast<double>(s.f_ffree)));
#ifdef __APPLE__
  o.Set("typeName", Napi::String::New(env, s.f_fstypename));
#endif
  return o;
}

// mknod(path: string, mode: number, rdev: number): void — mknod(2): a FIFO, socket, character or block
// device node (mode carries the S_IFMT type and the permission bits; the umask applies, as in mknod(2)).
Napi::Value Mknod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t mode = 0, rdev = 0;
  if (!ArgString(info, 0, &path, "path") || !ArgInt(info, 1, &mode, "mode") || !ArgInt(info, 2, &rdev, "rdev")) return Napi::Value();
  if (mknod(path.c_str(), static_cast<mode_t>(mode), static_cast<dev_t>(rdev)) < 0) {
    Napi::Error e = MakeErrno(env, errno, "mknod");
    e.Set("path", Napi::String::New(env, path));
    e.Set("message", Napi::String::New(env, e.Message() + " '" + path + "'"));
    e.ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- module

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
#define SETC(name) c.Set(#name, Napi::Number::New(env, static_cast<double>(name)))
#ifdef __linux__
  SETC(MFD_CLOEXEC);
  SETC(MFD_ALLOW_SEALING);
#ifdef MFD_NOEXEC_SEAL
  SETC(MFD_NOEXEC_SEAL);
  SETC(MFD_EXEC);
#else
  c.Set("MFD_NOEXEC_SEAL", Napi::Number::New(env, 0x0008));
  c.Set("MFD_EXEC", Napi::Number::New(env, 0x0010));
#endif
  SETC(FALLOC_FL_KEEP_SIZE);
  SETC(FALLOC_FL_PUNCH_HOLE);
  SETC(F_SEAL_SEAL);
  SETC(F_SEAL_SHRINK);
  SETC(F_SEAL_GROW);
  SETC(F_SEAL_WRITE);
#ifdef F_SEAL_FUTURE_WRITE
  SETC(F_SEAL_FUTURE_WRITE);
#else
  c.Set("F_SEAL_FUTURE_WRITE", Napi::Number::New(env, 0x0010));
#endif
#ifdef F_SEAL_EXEC
  SETC(F_SEAL_EXEC);
#else
  c.Set("F_SEAL_EXEC", Napi::Number::New(env, 0x0020));
#endif
  SETC(AT_EMPTY_PATH);
  SETC(MSG_CMSG_CLOEXEC);
#endif
#ifdef __APPLE__
  SETC(CLONE_NOFOLLOW);
  SETC(CLONE_NOOWNERCOPY);
#ifdef CLONE_ACL
  SETC(CLONE_ACL);
#endif
#endif
  SETC(PROT_NONE);
  SETC(PROT_READ);
  SETC(PROT_WRITE);
  SETC(PROT_EXEC);
  SETC(MAP_SHARED);
  SETC(MAP_PRIVATE);
  SETC(MAP_FIXED);
  SETC(MAP_ANON);
  SETC(WNOHANG);
  SETC(WUNTRACED);
  SETC(SOCK_STREAM);
  SETC(SOCK_DGRAM);
  SETC(SOCK_SEQPACKET);
  SETC(MSG_DONTWAIT);
  SETC(MSG_PEEK);
#undef SETC
  c.Set("SOCK_FLAG_CLOEXEC", Napi::Number::New(env, kCloexec));
  c.Set("SOCK_FLAG_NONBLOCK", Napi::Number::New(env, kNonblock));
  c.Set("PAGE_SIZE", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  return c;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
#ifdef __linux__
  EXPORT("memfdCreate", MemfdCreate);
  EXPORT("addSeals", AddSeals);
  EXPORT("getSeals", GetSeals);
  EXPORT("ficlone", Ficlone);
  EXPORT("spawnExec", SpawnExec);
#endif
#ifdef __APPLE__
  EXPORT("clonefile", Clonefile);
#endif
  EXPORT("ftruncate", Ftruncate);
#ifdef __linux__
  EXPORT("fallocate", Fallocate);
#endif
  EXPORT("setCloexec", SetCloexec);
  EXPORT("getCloexec", GetCloexec);
  EXPORT("pipe", Pipe);
  EXPORT("mmap", Mmap);
  EXPORT("munmap", Munmap);
  EXPORT("waitpid", Waitpid);
  EXPORT("socketpair", Socketpair);
  EXPORT("socket", Socket);
  EXPORT("bind", Bind);
  EXPORT("connect", Connect);
  EXPORT("listen", Listen);
  EXPORT("accept", Accept);
  EXPORT("sendFds", SendFds);
  EXPORT("recvFds", RecvFds);
  EXPORT("getPeerCred", GetPeerCred);
  EXPORT("statfs", Statfs);
  EXPORT("mknod", Mknod);
#undef EXPORT
  exports.Set("constants", Constants(env));
  exports.Set("platform",
#ifdef __linux__
              Napi::String::New(env, "linux")
#elif defined(__APPLE__)
              Napi::String::New(env, "darwin")
#else
              Napi::String::New(env, "other")
#endif
  );
  return exports;
}

}  // namespace

NODE_API_MODULE(agentfs_native, Init)
