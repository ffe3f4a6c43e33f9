/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * A fake VDS iSCSI hardware provider made of native COM objects, for the interop class under mono.
 *
 * Every object starts with a vtable pointer; every interface has every slot of its IDL vtable, in
 * order, followed by guard slots that catch a call past the end (an interface declared dual in C#
 * shifts its slots by four). Slots the class has no business calling answer E_NOTIMPL and are
 * recorded like every other call. Structures have the Windows layout (WCHAR is uint16_t).
 *
 * Bookkeeping for the harness: every call (object label, interface, method), every reference
 * count against its baseline, calls that reach deleted or destroyed objects, and every string
 * handed out, which must come back through free() exactly once. free() is observed by interposing
 * it: the harness runs mono with this library in LD_PRELOAD. Objects and strings are never given
 * back to the allocator, so a late or double release is seen instead of corrupting memory.
 * FAKEVDS_TRACE=1 in the environment prints every call, QueryInterface, AddRef and Release.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t HRESULT;
typedef uint16_t WCHAR;

#define EXPORT __attribute__((visibility("default")))

#define S_OK ((HRESULT)0)
#define S_FALSE ((HRESULT)1)
#define E_NOTIMPL ((HRESULT)0x80004001u)
#define E_NOINTERFACE ((HRESULT)0x80004002u)
#define E_POINTER ((HRESULT)0x80004003u)
#define E_UNEXPECTED ((HRESULT)0x8000FFFFu)
#define VDS_S_ALREADY_EXISTS ((HRESULT)0x00042714)
#define VDS_E_NOT_SUPPORTED ((HRESULT)0x80042400u)
#define VDS_E_OBJECT_NOT_FOUND ((HRESULT)0x80042405u)
#define VDS_E_OBJECT_DELETED ((HRESULT)0x8004240Bu)

/* ---- structures (vds.h), with the Windows layout ---- */

typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

typedef struct {
    int32_t type;
    uint32_t ipv4Address;
    uint8_t ipv6Address[16];
    uint32_t ulIpv6FlowInfo;
    uint32_t ulIpv6ScopeId;
    WCHAR wszTextAddress[257];
    uint32_t ulPort;
} VDS_IPADDRESS;

typedef struct {
    GUID id;
    VDS_IPADDRESS address;
    int32_t status;
} VDS_ISCSI_PORTAL_PROP;

typedef struct {
    GUID id;
    uint16_t tag;
} VDS_ISCSI_PORTALGROUP_PROP;

typedef struct {
    GUID id;
    WCHAR *pwszIscsiName;
    WCHAR *pwszFriendlyName;
    int32_t bChapEnabled;
} VDS_ISCSI_TARGET_PROP;

typedef struct {
    GUID id;
    WCHAR *pwszFriendlyName;
    WCHAR *pwszIdentification;
    uint32_t ulFlags;
    uint32_t ulStripeSizeFlags;
    int32_t status;
    int32_t health;
    int16_t sNumberOfInternalBuses;
    uint16_t sMaxNumberOfSlotsEachBus;
    uint16_t sMaxNumberOfControllers;
    uint16_t sRebuildPriority;
} VDS_SUB_SYSTEM_PROP;

typedef struct {
    int32_t type;
    union {
        struct {
            uint64_t ullOffset;
            GUID volumeId;
        } bv;
        struct {
            void *pPortalGroupUnk;
        } cpg;
    } u;
} VDS_ASYNC_OUTPUT;

_Static_assert(sizeof(GUID) == 16, "GUID");
_Static_assert(sizeof(VDS_IPADDRESS) == 552, "VDS_IPADDRESS");
_Static_assert(offsetof(VDS_IPADDRESS, wszTextAddress) == 32, "wszTextAddress");
_Static_assert(offsetof(VDS_IPADDRESS, ulPort) == 548, "ulPort");
_Static_assert(sizeof(VDS_ISCSI_PORTAL_PROP) == 572, "VDS_ISCSI_PORTAL_PROP");
_Static_assert(sizeof(VDS_ISCSI_PORTALGROUP_PROP) == 20, "VDS_ISCSI_PORTALGROUP_PROP");
_Static_assert(sizeof(VDS_ISCSI_TARGET_PROP) == 40, "VDS_ISCSI_TARGET_PROP");
_Static_assert(sizeof(VDS_SUB_SYSTEM_PROP) == 56, "VDS_SUB_SYSTEM_PROP");
_Static_assert(sizeof(VDS_ASYNC_OUTPUT) == 32, "VDS_ASYNC_OUTPUT");
_Static_assert(offsetof(VDS_ASYNC_OUTPUT, u) == 8, "VDS_ASYNC_OUTPUT union");

/* ---- objects ---- */

enum kind { K_LOADER, K_SERVICE, K_PROVIDER, K_SOFTWARE, K_SUBSYSTEM, K_TARGET, K_GROUP, K_PORTAL, K_ENUM, K_ASYNC };

typedef void (*slot_fn)(void);

struct obj;
struct iface {
    const char *name;
    GUID iid;
    const slot_fn *vtbl;
    const char *const *names; /* the IDL's methods after IUnknown, in vtable order */
    int nnames;
};

/* One interface pointer of an object: its first field is the vtable pointer. */
struct face {
    const slot_fn *vtbl;
    struct obj *owner;
    const struct iface *iface;
};

#define MAX_FACES 4
#define MAX_ITEMS 16

struct obj {
    struct face faces[MAX_FACES];
    int nfaces;
    unsigned world;
    char label[64];
    enum kind kind;
    GUID id;
    int refs;
    int transient; /* not held by the world: must be destroyed (count 0) after use */
    int destroyed;
    int deleted;
    /* the payload, by kind */
    struct obj *items[MAX_ITEMS]; /* enumeration; subsystems; portals; targets; groups; members */
    int nitems;
    struct obj *subs[MAX_ITEMS];
    int nsubs;
    struct obj *parent; /* group: its target; enum: its owner */
    int next;           /* enumeration position */
    int provider_type;
    int iscsi;
    char name[64];
    char alias[64];
    uint16_t tag;
    int cap;
    VDS_IPADDRESS address;
    int status;
    /* an operation */
    char method[32];
    struct obj *target; /* what the operation acts on */
    GUID portal;
    int set_status;
    HRESULT result;
    int effected;
    HRESULT progress_hr[8];
    uint32_t progress_pct[8];
    int nprogress;
};

static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static unsigned world = 0;
static struct obj **objects;
static size_t nobjects, capobjects;
static struct obj *last_async;

/* calls and problems, as text */
struct text {
    char *data;
    size_t len, cap;
};
static struct text calls, problems;

static void append(struct text *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void append(struct text *t, const char *format, ...)
{
    va_list args;
    for (;;) {
        va_start(args, format);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, format, args);
        va_end(args);
        if (n < 0) {
            abort();
        }
        if (t->data && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *grown = realloc(t->data, cap);
        if (!grown) {
            abort();
        }
        t->data = grown;
        t->cap = cap;
        t->data[t->len] = '\0';
    }
}

/* Joins up to three strings into dst (truncating): labels and keys are built from other labels. */
static void join(char *dst, size_t size, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        for (const char *s = parts[i]; s && *s && n + 1 < size; s++) {
            dst[n++] = *s;
        }
    }
    dst[n] = '\0';
}

static void reset_text(struct text *t)
{
    t->len = 0;
    if (t->data) {
        t->data[0] = '\0';
    }
}

static void problem(const struct obj *o, const char *what, const char *call)
{
    append(&problems, "%s: %s %s\n", o ? o->label : "?", what, call);
}

/* ---- faults: "label.Method" or "Interface::Method" -> HRESULT, for a number of calls ---- */

struct fault {
    char key[96];
    HRESULT hr;
    int times; /* < 0: every time */
};
static struct fault faults[64];
static int nfaults;

static int find_fault(const char *key, HRESULT *hr)
{
    for (int i = 0; i < nfaults; i++) {
        if (faults[i].times != 0 && strcmp(faults[i].key, key) == 0) {
            *hr = faults[i].hr;
            if (faults[i].times > 0) {
                faults[i].times--;
            }
            return 1;
        }
    }
    return 0;
}

/* ---- strings handed out: malloc'd, each must be freed exactly once ---- */

struct handed {
    void *p;
    int frees;
    unsigned world;
    char what[48];
};
#define MAX_STRINGS 8192
static struct handed strings[MAX_STRINGS];
static size_t nstrings;

static WCHAR *hand_string(const char *text, const char *what)
{
    size_t n = strlen(text);
    WCHAR *w = malloc((n + 1) * sizeof(WCHAR));
    if (!w || nstrings == MAX_STRINGS) {
        abort();
    }
    for (size_t i = 0; i <= n; i++) {
        w[i] = (WCHAR)(unsigned char)text[i];
    }
    strings[nstrings].p = w;
    strings[nstrings].frees = 0;
    strings[nstrings].world = world;
    snprintf(strings[nstrings].what, sizeof strings[nstrings].what, "%s", what);
    nstrings++;
    return w;
}

extern void __libc_free(void *p);

/* Every free() of the process passes here; the fake's strings are counted and kept. */
EXPORT void free(void *p)
{
    if (!p) {
        return;
    }
    if (nstrings) {
        pthread_mutex_lock(&lock);
        for (size_t i = nstrings; i-- > 0;) {
            if (strings[i].p == p) {
                strings[i].frees++;
                pthread_mutex_unlock(&lock);
                return;
            }
        }
        pthread_mutex_unlock(&lock);
    }
    __libc_free(p);
}

/* ---- IUnknown and the recording of calls ---- */

static const GUID IID_IUnknown = {0x00000000, 0x0000, 0x0000, {0xC0, 0, 0, 0, 0, 0, 0, 0x46}};

static int same_guid(const GUID *a, const GUID *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

static int in_world(const struct obj *o)
{
    return o->world == world;
}

/* Whether the last call answered with a scripted fault. */
static int fault_hit;

/* A call through a method slot: recorded; refused on a destroyed or deleted object. The lock
 * keeps the books straight should the runtime's finalizer thread release an object meanwhile. */
static HRESULT enter_locked(struct face *self, const char *method);
static HRESULT enter(struct face *self, const char *method)
{
    pthread_mutex_lock(&lock);
    HRESULT hr = enter_locked(self, method);
    pthread_mutex_unlock(&lock);
    return hr;
}

static HRESULT enter_locked(struct face *self, const char *method)
{
    struct obj *o = self->owner;
    char call[96];
    join(call, sizeof call, self->iface->name, "::", method);
    if (getenv("FAKEVDS_TRACE")) {
        fprintf(stderr, "trace: %s %s\n", o->label, call);
    }
    if (in_world(o)) {
        append(&calls, "%s %s\n", o->label, call);
    }
    if (o->destroyed) {
        problem(o, "call after the final Release:", call);
        return E_UNEXPECTED;
    }
    if (o->deleted) {
        problem(o, "call on a deleted object:", call);
        return VDS_E_OBJECT_DELETED;
    }
    char key[128];
    HRESULT hr;
    join(key, sizeof key, o->label, ".", method);
    fault_hit = in_world(o) && (find_fault(key, &hr) || find_fault(call, &hr));
    return fault_hit ? hr : S_OK;
}

static HRESULT notimpl(struct face *self, const char *method)
{
    HRESULT hr = enter(self, method);
    (void)hr;
    return E_NOTIMPL;
}

static HRESULT beyond(struct face *self, int slot)
{
    char what[64];
    snprintf(what, sizeof what, "<slot %d past the end>", slot);
    enter(self, what);
    problem(self->owner, "call past the end of the vtable of", self->iface->name);
    return E_NOTIMPL;
}

static uint32_t addref(struct face *self)
{
    pthread_mutex_lock(&lock);
    struct obj *o = self->owner;
    if (o->destroyed) {
        problem(o, "AddRef after the final Release of", self->iface->name);
    } else if (o->deleted) {
        problem(o, "AddRef on a deleted object through", self->iface->name);
    }
    uint32_t refs = (uint32_t)++o->refs;
    if (getenv("FAKEVDS_TRACE")) {
        fprintf(stderr, "trace: %s AddRef -> %u\n", o->label, refs);
    }
    pthread_mutex_unlock(&lock);
    return refs;
}

static uint32_t release(struct face *self)
{
    pthread_mutex_lock(&lock);
    struct obj *o = self->owner;
    if (o->destroyed || o->refs <= 0) {
        problem(o, "released once too often through", self->iface->name);
        pthread_mutex_unlock(&lock);
        return 0;
    }
    int refs = --o->refs;
    if (getenv("FAKEVDS_TRACE")) {
        fprintf(stderr, "trace: %s Release -> %d\n", o->label, refs);
    }
    if (refs == 0) {
        if (o->transient) {
            o->destroyed = 1;
        } else {
            problem(o, "released below the reference the provider keeps, through", self->iface->name);
        }
    }
    pthread_mutex_unlock(&lock);
    return (uint32_t)refs;
}

static HRESULT qi(struct face *self, const GUID *iid, void **out)
{
    if (!out) {
        return E_POINTER;
    }
    pthread_mutex_lock(&lock);
    struct obj *o = self->owner;
    *out = NULL;
    if (o->destroyed) {
        problem(o, "QueryInterface after the final Release through", self->iface->name);
    } else if (o->deleted) {
        problem(o, "QueryInterface on a deleted object through", self->iface->name);
    }
    struct face *found = NULL;
    if (same_guid(iid, &IID_IUnknown)) {
        found = &o->faces[0];
    }
    for (int i = 0; !found && i < o->nfaces; i++) {
        if (same_guid(iid, &o->faces[i].iface->iid)) {
            found = &o->faces[i];
        }
    }
    if (getenv("FAKEVDS_TRACE")) {
        fprintf(stderr, "trace: %s QI %08x %s -> %d\n", o->label, iid->Data1, found ? "ok" : "no", o->refs + (found != NULL));
    }
    if (found) {
        o->refs++;
        *out = found;
    }
    pthread_mutex_unlock(&lock);
    return found ? S_OK : E_NOINTERFACE;
}

/* ---- the world ---- */

static struct obj *new_obj(enum kind kind, const char *label)
{
    struct obj *o = calloc(1, sizeof *o);
    if (!o) {
        abort();
    }
    if (nobjects == capobjects) {
        capobjects = capobjects ? capobjects * 2 : 64;
        objects = realloc(objects, capobjects * sizeof *objects);
        if (!objects) {
            abort();
        }
    }
    objects[nobjects++] = o;
    o->world = world;
    o->kind = kind;
    join(o->label, sizeof o->label, label, NULL, NULL);
    o->refs = 1; /* the world's own reference, or the one handed out for a transient object */
    o->id.Data1 = 0x5d500000u + (uint32_t)nobjects;
    o->id.Data2 = (uint16_t)world;
    o->id.Data3 = (uint16_t)kind;
    memcpy(o->id.Data4, "vdsfake!", 8);
    o->cap = 100;
    return o;
}

static void add_face(struct obj *o, const struct iface *iface)
{
    struct face *f = &o->faces[o->nfaces++];
    f->vtbl = iface->vtbl;
    f->owner = o;
    f->iface = iface;
}

static struct face *face_of(struct obj *o, const struct iface *iface)
{
    for (int i = 0; i < o->nfaces; i++) {
        if (o->faces[i].iface == iface) {
            return &o->faces[i];
        }
    }
    abort();
}

/* An interface pointer handed to the caller: one more reference, the caller's. */
static void *hand(struct obj *o, const struct iface *iface)
{
    pthread_mutex_lock(&lock);
    o->refs++;
    pthread_mutex_unlock(&lock);
    return iface ? (void *)face_of(o, iface) : (void *)&o->faces[0];
}

static struct obj *find_label(const char *label)
{
    for (size_t i = nobjects; i-- > 0;) {
        if (objects[i]->world == world && strcmp(objects[i]->label, label) == 0) {
            return objects[i];
        }
    }
    return NULL;
}

static struct obj *find_id(const GUID *id, enum kind kind)
{
    for (size_t i = 0; i < nobjects; i++) {
        struct obj *o = objects[i];
        if (o->world == world && o->kind == kind && same_guid(&o->id, id)) {
            return o;
        }
    }
    return NULL;
}

static void push(struct obj **list, int *n, struct obj *o)
{
    if (*n == MAX_ITEMS) {
        abort();
    }
    list[(*n)++] = o;
}

static void drop(struct obj **list, int *n, const struct obj *o)
{
    for (int i = 0; i < *n; i++) {
        if (list[i] == o) {
            memmove(&list[i], &list[i + 1], (size_t)(*n - i - 1) * sizeof *list);
            (*n)--;
            return;
        }
    }
}

/* ---- interface declarations (the vtables follow the method implementations) ---- */

extern const struct iface I_IVdsServiceLoader, I_IVdsService, I_IEnumVdsObject, I_IVdsAsync, I_IVdsProvider,
    I_IVdsHwProvider, I_IVdsHwProviderType, I_IVdsSubSystem, I_IVdsSubSystemIscsi, I_IVdsIscsiTarget,
    I_IVdsIscsiPortalGroup, I_IVdsIscsiPortal;

static struct obj *new_enum(struct obj *owner, const char *what, struct obj **items, int n)
{
    char label[64];
    join(label, sizeof label, owner->label, ".", what);
    struct obj *e = new_obj(K_ENUM, label);
    add_face(e, &I_IEnumVdsObject);
    e->transient = 1;
    e->parent = owner;
    for (int i = 0; i < n; i++) {
        push(e->items, &e->nitems, items[i]);
    }
    return e;
}

static struct obj *new_async(struct obj *on, const char *method)
{
    char label[64];
    join(label, sizeof label, on->label, ".", method);
    join(label, sizeof label, label, ".async", NULL);
    struct obj *a = new_obj(K_ASYNC, label);
    add_face(a, &I_IVdsAsync);
    a->target = on;
    snprintf(a->method, sizeof a->method, "%s", method);
    char key[128];
    HRESULT hr;
    join(key, sizeof key, label, ".Result", NULL);
    if (find_fault(key, &hr)) {
        a->result = hr;
    }
    last_async = a;
    return a;
}

/* ---- IVdsServiceLoader ---- */

static HRESULT loader_LoadService(struct face *self, const WCHAR *machine, void **service)
{
    HRESULT hr = enter(self, "LoadService");
    if (service) {
        *service = NULL;
    }
    if (machine) {
        problem(self->owner, "LoadService was given a machine name instead of NULL", "");
    }
    if (hr < 0) {
        return hr;
    }
    if (!service) {
        return E_POINTER;
    }
    *service = hand(self->owner->subs[0], &I_IVdsService);
    return hr;
}

/* ---- IVdsService ---- */

static HRESULT service_WaitForServiceReady(struct face *self)
{
    return enter(self, "WaitForServiceReady");
}

static HRESULT service_QueryProviders(struct face *self, uint32_t mask, void **providers)
{
    HRESULT hr = enter(self, "QueryProviders");
    if (providers) {
        *providers = NULL;
    }
    if (mask != 0x2) {
        problem(self->owner, "QueryProviders with a mask other than VDS_QUERY_HARDWARE_PROVIDERS", "");
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *providers = &new_enum(o, "providers", o->items, o->nitems)->faces[0];
    return hr;
}

static HRESULT service_GetObject(struct face *self, GUID id, int32_t type, void **unknown)
{
    HRESULT hr = enter(self, "GetObject");
    if (unknown) {
        *unknown = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    enum kind kind = type == 36 ? K_PORTAL : type == 37 ? K_TARGET : type == 38 ? K_GROUP : K_ENUM;
    struct obj *o = find_id(&id, kind);
    if (!o || o->deleted) {
        return VDS_E_OBJECT_NOT_FOUND;
    }
    *unknown = hand(o, NULL);
    return hr;
}

/* ---- IEnumVdsObject ---- */

static HRESULT enum_Next(struct face *self, uint32_t celt, void **items, uint32_t *fetched)
{
    HRESULT hr = enter(self, "Next");
    struct obj *e = self->owner;
    uint32_t n = 0;
    if (hr < 0) {
        if (fetched) {
            *fetched = 0;
        }
        return hr;
    }
    if (!items || !fetched) {
        return E_POINTER;
    }
    while (n < celt && e->next < e->nitems) {
        items[n++] = hand(e->items[e->next++], NULL);
    }
    *fetched = n;
    return n == celt ? S_OK : S_FALSE;
}

/* ---- IVdsAsync ---- */

static void effect(struct obj *a)
{
    struct obj *on = a->target;
    if (a->effected || a->result < 0) {
        return;
    }
    a->effected = 1;
    if (strcmp(a->method, "AddPortal") == 0) {
        struct obj *portal = find_id(&a->portal, K_PORTAL);
        drop(on->items, &on->nitems, portal);
        push(on->items, &on->nitems, portal);
    } else if (strcmp(a->method, "RemovePortal") == 0) {
        drop(on->items, &on->nitems, find_id(&a->portal, K_PORTAL));
    } else if (strcmp(a->method, "Delete") == 0) {
        on->deleted = 1;
        drop(on->parent->subs, &on->parent->nsubs, on);
    } else if (strcmp(a->method, "SetStatus") == 0) {
        on->status = a->set_status;
    } else if (strcmp(a->method, "CreatePortalGroup") == 0) {
        if (on->nsubs >= on->cap) {
            a->result = VDS_S_ALREADY_EXISTS;
            a->subs[0] = on->subs[0];
        } else {
            char label[64], number[16];
            snprintf(number, sizeof number, ".g%d", on->nsubs + 1);
            join(label, sizeof label, on->label, number, NULL);
            struct obj *g = new_obj(K_GROUP, label);
            add_face(g, &I_IVdsIscsiPortalGroup);
            g->parent = on;
            uint16_t tag = 0;
            for (int i = 0; i < on->nsubs; i++) {
                tag = on->subs[i]->tag > tag ? on->subs[i]->tag : tag;
            }
            g->tag = (uint16_t)(tag + 1);
            push(on->subs, &on->nsubs, g);
            a->subs[0] = g;
        }
    }
}

static HRESULT async_Cancel(struct face *self)
{
    /* Hardware providers are not documented to support Cancel. */
    HRESULT hr = enter(self, "Cancel");
    return fault_hit ? hr : VDS_E_NOT_SUPPORTED;
}

static HRESULT async_Wait(struct face *self, HRESULT *result, VDS_ASYNC_OUTPUT *output)
{
    HRESULT hr = enter(self, "Wait");
    struct obj *a = self->owner;
    if (!result || !output) {
        return E_POINTER;
    }
    memset(output, 0, sizeof *output);
    *result = a->result;
    if (hr < 0) {
        return hr;
    }
    effect(a);
    *result = a->result;
    if (strcmp(a->method, "CreatePortalGroup") == 0 && a->result >= 0) {
        output->type = 63;
        output->u.cpg.pPortalGroupUnk = hand(a->subs[0], NULL);
    } else {
        output->type = strcmp(a->method, "AddPortal") == 0      ? 65
                       : strcmp(a->method, "RemovePortal") == 0 ? 66
                       : strcmp(a->method, "Delete") == 0       ? 67
                                                                : 0;
    }
    return hr;
}

static HRESULT async_QueryStatus(struct face *self, HRESULT *result, uint32_t *percent)
{
    HRESULT hr = enter(self, "QueryStatus");
    struct obj *a = self->owner;
    if (!result || !percent) {
        return E_POINTER;
    }
    if (hr < 0) {
        return hr;
    }
    if (a->next < a->nprogress) {
        *result = a->progress_hr[a->next];
        *percent = a->progress_pct[a->next];
        a->next++;
    } else {
        *result = a->result;
        *percent = 100;
    }
    return hr;
}

/* ---- IVdsHwProvider, IVdsHwProviderType ---- */

static HRESULT provider_QuerySubSystems(struct face *self, void **subsystems)
{
    HRESULT hr = enter(self, "QuerySubSystems");
    if (subsystems) {
        *subsystems = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *subsystems = &new_enum(o, "subsystems", o->subs, o->nsubs)->faces[0];
    return hr;
}

static HRESULT provider_Reenumerate(struct face *self)
{
    return enter(self, "Reenumerate");
}

static HRESULT provider_Refresh(struct face *self)
{
    return enter(self, "Refresh");
}

static HRESULT provider_GetProviderType(struct face *self, int32_t *type)
{
    HRESULT hr = enter(self, "GetProviderType");
    if (!type) {
        return E_POINTER;
    }
    *type = self->owner->provider_type;
    return hr;
}

/* ---- IVdsSubSystem, IVdsSubSystemIscsi ---- */

static HRESULT subsystem_GetProperties(struct face *self, VDS_SUB_SYSTEM_PROP *properties)
{
    HRESULT hr = enter(self, "GetProperties");
    struct obj *o = self->owner;
    if (hr < 0) {
        return hr;
    }
    char ident[80];
    join(ident, sizeof ident, "ident-", o->label, NULL);
    memset(properties, 0, sizeof *properties);
    properties->id = o->id;
    properties->pwszFriendlyName = hand_string(o->name, "subsystem friendly name");
    properties->pwszIdentification = hand_string(ident, "subsystem identification");
    properties->status = 1;
    properties->health = 1;
    properties->sRebuildPriority = 0x7fff;
    return hr;
}

static HRESULT subsystem_QueryTargets(struct face *self, void **targets)
{
    HRESULT hr = enter(self, "QueryTargets");
    if (targets) {
        *targets = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *targets = &new_enum(o, "targets", o->subs, o->nsubs)->faces[0];
    return hr;
}

static HRESULT subsystem_QueryPortals(struct face *self, void **portals)
{
    HRESULT hr = enter(self, "QueryPortals");
    if (portals) {
        *portals = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *portals = &new_enum(o, "portals", o->items, o->nitems)->faces[0];
    return hr;
}

/* ---- IVdsIscsiTarget ---- */

static HRESULT target_GetProperties(struct face *self, VDS_ISCSI_TARGET_PROP *properties)
{
    HRESULT hr = enter(self, "GetProperties");
    struct obj *o = self->owner;
    if (hr < 0) {
        return hr;
    }
    memset(properties, 0, sizeof *properties);
    properties->id = o->id;
    properties->pwszIscsiName = hand_string(o->name, "target iSCSI name");
    properties->pwszFriendlyName = o->alias[0] ? hand_string(o->alias, "target alias") : NULL;
    return hr;
}

static HRESULT target_QueryPortalGroups(struct face *self, void **groups)
{
    HRESULT hr = enter(self, "QueryPortalGroups");
    if (groups) {
        *groups = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *groups = &new_enum(o, "groups", o->subs, o->nsubs)->faces[0];
    return hr;
}

static HRESULT start(struct face *self, const char *method, void **pending, struct obj **created)
{
    HRESULT hr = enter(self, method);
    *created = NULL;
    if (pending) {
        *pending = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    if (!pending) {
        return E_POINTER;
    }
    *created = new_async(self->owner, method);
    *pending = hand(*created, &I_IVdsAsync);
    return hr;
}

static HRESULT target_CreatePortalGroup(struct face *self, void **pending)
{
    struct obj *a;
    return start(self, "CreatePortalGroup", pending, &a);
}

/* ---- IVdsIscsiPortalGroup ---- */

static HRESULT group_GetProperties(struct face *self, VDS_ISCSI_PORTALGROUP_PROP *properties)
{
    HRESULT hr = enter(self, "GetProperties");
    if (hr < 0) {
        return hr;
    }
    memset(properties, 0, sizeof *properties);
    properties->id = self->owner->id;
    properties->tag = self->owner->tag;
    return hr;
}

static HRESULT group_QueryAssociatedPortals(struct face *self, void **portals)
{
    HRESULT hr = enter(self, "QueryAssociatedPortals");
    if (portals) {
        *portals = NULL;
    }
    if (hr < 0) {
        return hr;
    }
    struct obj *o = self->owner;
    *portals = &new_enum(o, "members", o->items, o->nitems)->faces[0];
    return hr;
}

static HRESULT group_portal_call(struct face *self, const char *method, GUID portal, void **pending)
{
    if (!self->owner->deleted && in_world(self->owner) && !find_id(&portal, K_PORTAL)) {
        enter(self, method);
        if (pending) {
            *pending = NULL;
        }
        return VDS_E_OBJECT_NOT_FOUND;
    }
    struct obj *a;
    HRESULT hr = start(self, method, pending, &a);
    if (a) {
        a->portal = portal;
    }
    return hr;
}

static HRESULT group_AddPortal(struct face *self, GUID portal, void **pending)
{
    return group_portal_call(self, "AddPortal", portal, pending);
}

static HRESULT group_RemovePortal(struct face *self, GUID portal, void **pending)
{
    return group_portal_call(self, "RemovePortal", portal, pending);
}

static HRESULT group_Delete(struct face *self, void **pending)
{
    struct obj *a;
    return start(self, "Delete", pending, &a);
}

/* ---- IVdsIscsiPortal ---- */

static HRESULT portal_GetProperties(struct face *self, VDS_ISCSI_PORTAL_PROP *properties)
{
    HRESULT hr = enter(self, "GetProperties");
    if (hr < 0) {
        return hr;
    }
    memset(properties, 0, sizeof *properties);
    properties->id = self->owner->id;
    properties->address = self->owner->address;
    properties->status = self->owner->status;
    return hr;
}

static HRESULT portal_SetStatus(struct face *self, int32_t status, void **pending)
{
    struct obj *a;
    HRESULT hr = start(self, "SetStatus", pending, &a);
    if (a) {
        a->set_status = status;
    }
    return hr;
}

/* ---- the vtables: IUnknown, every IDL slot in order, then guard slots ---- */

#define SLOT(f) ((slot_fn)(f))
#define UNUSED_SLOT(I, M)                                                                                              \
    static HRESULT I##_##M(struct face *self)                                                                          \
    {                                                                                                                  \
        return notimpl(self, #M);                                                                                      \
    }
#define GUARD_SLOT(n)                                                                                                  \
    static HRESULT guard_##n(struct face *self)                                                                        \
    {                                                                                                                  \
        return beyond(self, n);                                                                                        \
    }
/* Guard slot n answers for "slot n of a vtable shorter than n"; n counts from the end of IUnknown. */
GUARD_SLOT(1)
GUARD_SLOT(2)
GUARD_SLOT(3)
GUARD_SLOT(4)
GUARD_SLOT(5)
GUARD_SLOT(6)
GUARD_SLOT(7)
GUARD_SLOT(8)
#define GUARDS SLOT(guard_1), SLOT(guard_2), SLOT(guard_3), SLOT(guard_4), SLOT(guard_5), SLOT(guard_6), SLOT(guard_7), SLOT(guard_8)
#define IUNKNOWN SLOT(qi), SLOT(addref), SLOT(release)

#define IFACE(I, d1, d2, d3, b0, b1, b2, b3, b4, b5, b6, b7)                                                             \
    const struct iface I_##I = {#I,                                                                                    \
                                {d1, d2, d3, {b0, b1, b2, b3, b4, b5, b6, b7}},                                        \
                                vt_##I,                                                                                \
                                nm_##I,                                                                                \
                                (int)(sizeof nm_##I / sizeof nm_##I[0])}

static const char *const nm_IVdsServiceLoader[] = {"LoadService"};
static const slot_fn vt_IVdsServiceLoader[] = {IUNKNOWN, SLOT(loader_LoadService), GUARDS};
IFACE(IVdsServiceLoader, 0xE0393303, 0x90D4, 0x4A97, 0xAB, 0x71, 0xE9, 0xB6, 0x71, 0xEE, 0x27, 0x29);

UNUSED_SLOT(IVdsService, IsServiceReady)
UNUSED_SLOT(IVdsService, GetProperties)
UNUSED_SLOT(IVdsService, QueryMaskedDisks)
UNUSED_SLOT(IVdsService, QueryUnallocatedDisks)
UNUSED_SLOT(IVdsService, QueryDriveLetters)
UNUSED_SLOT(IVdsService, QueryFileSystemTypes)
UNUSED_SLOT(IVdsService, Reenumerate)
UNUSED_SLOT(IVdsService, Refresh)
UNUSED_SLOT(IVdsService, CleanupObsoleteMountPoints)
UNUSED_SLOT(IVdsService, Advise)
UNUSED_SLOT(IVdsService, Unadvise)
UNUSED_SLOT(IVdsService, Reboot)
UNUSED_SLOT(IVdsService, SetFlags)
UNUSED_SLOT(IVdsService, ClearFlags)
static const char *const nm_IVdsService[] = {"IsServiceReady", "WaitForServiceReady", "GetProperties", "QueryProviders", "QueryMaskedDisks", "QueryUnallocatedDisks", "GetObject", "QueryDriveLetters", "QueryFileSystemTypes", "Reenumerate", "Refresh", "CleanupObsoleteMountPoints", "Advise", "Unadvise", "Reboot", "SetFlags", "ClearFlags"};
static const slot_fn vt_IVdsService[] = {
    IUNKNOWN,
    SLOT(IVdsService_IsServiceReady),
    SLOT(service_WaitForServiceReady),
    SLOT(IVdsService_GetProperties),
    SLOT(service_QueryProviders),
    SLOT(IVdsService_QueryMaskedDisks),
    SLOT(IVdsService_QueryUnallocatedDisks),
    SLOT(service_GetObject),
    SLOT(IVdsService_QueryDriveLetters),
    SLOT(IVdsService_QueryFileSystemTypes),
    SLOT(IVdsService_Reenumerate),
    SLOT(IVdsService_Refresh),
    SLOT(IVdsService_CleanupObsoleteMountPoints),
    SLOT(IVdsService_Advise),
    SLOT(IVdsService_Unadvise),
    SLOT(IVdsService_Reboot),
    SLOT(IVdsService_SetFlags),
    SLOT(IVdsService_ClearFlags),
    GUARDS,
};
IFACE(IVdsService, 0x0818A8EF, 0x9BA9, 0x40D8, 0xA6, 0xF9, 0xE2, 0x28, 0x33, 0xCC, 0x77, 0x1E);

UNUSED_SLOT(IEnumVdsObject, Skip)
UNUSED_SLOT(IEnumVdsObject, Reset)
UNUSED_SLOT(IEnumVdsObject, Clone)
static const char *const nm_IEnumVdsObject[] = {"Next", "Skip", "Reset", "Clone"};
static const slot_fn vt_IEnumVdsObject[] = {
    IUNKNOWN, SLOT(enum_Next), SLOT(IEnumVdsObject_Skip), SLOT(IEnumVdsObject_Reset), SLOT(IEnumVdsObject_Clone), GUARDS,
};
IFACE(IEnumVdsObject, 0x118610B7, 0x8D94, 0x4030, 0xB5, 0xB8, 0x50, 0x08, 0x89, 0x78, 0x8E, 0x4E);

static const char *const nm_IVdsAsync[] = {"Cancel", "Wait", "QueryStatus"};
static const slot_fn vt_IVdsAsync[] = {IUNKNOWN, SLOT(async_Cancel), SLOT(async_Wait), SLOT(async_QueryStatus), GUARDS};
IFACE(IVdsAsync, 0xD5D23B6D, 0x5A55, 0x4492, 0x98, 0x89, 0x39, 0x7A, 0x3C, 0x2D, 0x2D, 0xBC);

UNUSED_SLOT(IVdsProvider, GetProperties)
static const char *const nm_IVdsProvider[] = {"GetProperties"};
static const slot_fn vt_IVdsProvider[] = {IUNKNOWN, SLOT(IVdsProvider_GetProperties), GUARDS};
IFACE(IVdsProvider, 0x10C5E575, 0x7984, 0x4E81, 0xA5, 0x6B, 0x43, 0x1F, 0x5F, 0x92, 0xAE, 0x42);

static const char *const nm_IVdsHwProvider[] = {"QuerySubSystems", "Reenumerate", "Refresh"};
static const slot_fn vt_IVdsHwProvider[] = {
    IUNKNOWN, SLOT(provider_QuerySubSystems), SLOT(provider_Reenumerate), SLOT(provider_Refresh), GUARDS,
};
IFACE(IVdsHwProvider, 0xD99BDAAE, 0xB13A, 0x4178, 0x9F, 0xDB, 0xE2, 0x7F, 0x16, 0xB4, 0x60, 0x3E);

static const char *const nm_IVdsHwProviderType[] = {"GetProviderType"};
static const slot_fn vt_IVdsHwProviderType[] = {IUNKNOWN, SLOT(provider_GetProviderType), GUARDS};
IFACE(IVdsHwProviderType, 0x3E0F5166, 0x542D, 0x4FC6, 0x94, 0x7A, 0x01, 0x21, 0x74, 0x24, 0x0B, 0x7E);

UNUSED_SLOT(IVdsSubSystem, GetProvider)
UNUSED_SLOT(IVdsSubSystem, QueryControllers)
UNUSED_SLOT(IVdsSubSystem, QueryLuns)
UNUSED_SLOT(IVdsSubSystem, QueryDrives)
UNUSED_SLOT(IVdsSubSystem, GetDrive)
UNUSED_SLOT(IVdsSubSystem, Reenumerate)
UNUSED_SLOT(IVdsSubSystem, SetControllerStatus)
UNUSED_SLOT(IVdsSubSystem, CreateLun)
UNUSED_SLOT(IVdsSubSystem, ReplaceDrive)
UNUSED_SLOT(IVdsSubSystem, SetStatus)
UNUSED_SLOT(IVdsSubSystem, QueryMaxLunCreateSize)
static const char *const nm_IVdsSubSystem[] = {"GetProperties", "GetProvider", "QueryControllers", "QueryLuns", "QueryDrives", "GetDrive", "Reenumerate", "SetControllerStatus", "CreateLun", "ReplaceDrive", "SetStatus", "QueryMaxLunCreateSize"};
static const slot_fn vt_IVdsSubSystem[] = {
    IUNKNOWN,
    SLOT(subsystem_GetProperties),
    SLOT(IVdsSubSystem_GetProvider),
    SLOT(IVdsSubSystem_QueryControllers),
    SLOT(IVdsSubSystem_QueryLuns),
    SLOT(IVdsSubSystem_QueryDrives),
    SLOT(IVdsSubSystem_GetDrive),
    SLOT(IVdsSubSystem_Reenumerate),
    SLOT(IVdsSubSystem_SetControllerStatus),
    SLOT(IVdsSubSystem_CreateLun),
    SLOT(IVdsSubSystem_ReplaceDrive),
    SLOT(IVdsSubSystem_SetStatus),
    SLOT(IVdsSubSystem_QueryMaxLunCreateSize),
    GUARDS,
};
IFACE(IVdsSubSystem, 0x6FCEE2D3, 0x6D90, 0x4F91, 0x80, 0xE2, 0xA5, 0xC7, 0xCA, 0xAC, 0xA9, 0xD8);

UNUSED_SLOT(IVdsSubSystemIscsi, CreateTarget)
UNUSED_SLOT(IVdsSubSystemIscsi, SetIpsecGroupPresharedKey)
static const char *const nm_IVdsSubSystemIscsi[] = {"QueryTargets", "QueryPortals", "CreateTarget", "SetIpsecGroupPresharedKey"};
static const slot_fn vt_IVdsSubSystemIscsi[] = {
    IUNKNOWN,
    SLOT(subsystem_QueryTargets),
    SLOT(subsystem_QueryPortals),
    SLOT(IVdsSubSystemIscsi_CreateTarget),
    SLOT(IVdsSubSystemIscsi_SetIpsecGroupPresharedKey),
    GUARDS,
};
IFACE(IVdsSubSystemIscsi, 0x0027346F, 0x40D0, 0x4B45, 0x8C, 0xEC, 0x59, 0x06, 0xDC, 0x03, 0x80, 0xC8);

UNUSED_SLOT(IVdsIscsiTarget, GetSubSystem)
UNUSED_SLOT(IVdsIscsiTarget, QueryAssociatedLuns)
UNUSED_SLOT(IVdsIscsiTarget, Delete)
UNUSED_SLOT(IVdsIscsiTarget, SetFriendlyName)
UNUSED_SLOT(IVdsIscsiTarget, SetSharedSecret)
UNUSED_SLOT(IVdsIscsiTarget, RememberInitiatorSharedSecret)
UNUSED_SLOT(IVdsIscsiTarget, GetConnectedInitiators)
static const char *const nm_IVdsIscsiTarget[] = {"GetProperties", "GetSubSystem", "QueryPortalGroups", "QueryAssociatedLuns", "CreatePortalGroup", "Delete", "SetFriendlyName", "SetSharedSecret", "RememberInitiatorSharedSecret", "GetConnectedInitiators"};
static const slot_fn vt_IVdsIscsiTarget[] = {
    IUNKNOWN,
    SLOT(target_GetProperties),
    SLOT(IVdsIscsiTarget_GetSubSystem),
    SLOT(target_QueryPortalGroups),
    SLOT(IVdsIscsiTarget_QueryAssociatedLuns),
    SLOT(target_CreatePortalGroup),
    SLOT(IVdsIscsiTarget_Delete),
    SLOT(IVdsIscsiTarget_SetFriendlyName),
    SLOT(IVdsIscsiTarget_SetSharedSecret),
    SLOT(IVdsIscsiTarget_RememberInitiatorSharedSecret),
    SLOT(IVdsIscsiTarget_GetConnectedInitiators),
    GUARDS,
};
IFACE(IVdsIscsiTarget, 0xAA8F5055, 0x83E5, 0x4BCC, 0xAA, 0x73, 0x19, 0x85, 0x1A, 0x36, 0xA8, 0x49);

UNUSED_SLOT(IVdsIscsiPortalGroup, GetTarget)
static const char *const nm_IVdsIscsiPortalGroup[] = {"GetProperties", "GetTarget", "QueryAssociatedPortals", "AddPortal", "RemovePortal", "Delete"};
static const slot_fn vt_IVdsIscsiPortalGroup[] = {
    IUNKNOWN,
    SLOT(group_GetProperties),
    SLOT(IVdsIscsiPortalGroup_GetTarget),
    SLOT(group_QueryAssociatedPortals),
    SLOT(group_AddPortal),
    SLOT(group_RemovePortal),
    SLOT(group_Delete),
    GUARDS,
};
IFACE(IVdsIscsiPortalGroup, 0xFEF5F89D, 0xA3DD, 0x4B36, 0xBF, 0x28, 0xE7, 0xDD, 0xE0, 0x45, 0xC5, 0x93);

UNUSED_SLOT(IVdsIscsiPortal, GetSubSystem)
UNUSED_SLOT(IVdsIscsiPortal, QueryAssociatedPortalGroups)
UNUSED_SLOT(IVdsIscsiPortal, SetIpsecTunnelAddress)
UNUSED_SLOT(IVdsIscsiPortal, GetIpsecSecurity)
UNUSED_SLOT(IVdsIscsiPortal, SetIpsecSecurity)
static const char *const nm_IVdsIscsiPortal[] = {"GetProperties", "GetSubSystem", "QueryAssociatedPortalGroups", "SetStatus", "SetIpsecTunnelAddress", "GetIpsecSecurity", "SetIpsecSecurity"};
static const slot_fn vt_IVdsIscsiPortal[] = {
    IUNKNOWN,
    SLOT(portal_GetProperties),
    SLOT(IVdsIscsiPortal_GetSubSystem),
    SLOT(IVdsIscsiPortal_QueryAssociatedPortalGroups),
    SLOT(portal_SetStatus),
    SLOT(IVdsIscsiPortal_SetIpsecTunnelAddress),
    SLOT(IVdsIscsiPortal_GetIpsecSecurity),
    SLOT(IVdsIscsiPortal_SetIpsecSecurity),
    GUARDS,
};
IFACE(IVdsIscsiPortal, 0x7FA1499D, 0xEC85, 0x4A8A, 0xA4, 0x7B, 0xFF, 0x69, 0x20, 0x1F, 0xCD, 0x34);

/* ---- building a world: the same objects as the managed harness's Lab ---- */

static struct obj *the_loader;

static struct obj *provider(struct obj *service, const char *label, int type)
{
    struct obj *p = new_obj(K_PROVIDER, label);
    add_face(p, &I_IVdsProvider);
    add_face(p, &I_IVdsHwProvider);
    add_face(p, &I_IVdsHwProviderType);
    p->provider_type = type;
    push(service->items, &service->nitems, p);
    return p;
}

static struct obj *subsystem(struct obj *provider, const char *label, const char *name, int iscsi)
{
    struct obj *s = new_obj(K_SUBSYSTEM, label);
    add_face(s, &I_IVdsSubSystem);
    if (iscsi) {
        add_face(s, &I_IVdsSubSystemIscsi);
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    push(provider->subs, &provider->nsubs, s);
    return s;
}

static struct obj *portal(struct obj *subsystem, const char *label, int type, uint32_t ipv4, const uint8_t *ipv6,
                          const char *text, uint32_t port, int status)
{
    struct obj *p = new_obj(K_PORTAL, label);
    add_face(p, &I_IVdsIscsiPortal);
    p->address.type = type;
    p->address.ipv4Address = ipv4;
    if (ipv6) {
        memcpy(p->address.ipv6Address, ipv6, 16);
    }
    for (size_t i = 0; text && text[i] && i < 256; i++) {
        p->address.wszTextAddress[i] = (WCHAR)(unsigned char)text[i];
    }
    p->address.ulPort = port;
    p->status = status;
    push(subsystem->items, &subsystem->nitems, p);
    return p;
}

static struct obj *target(struct obj *subsystem, const char *label, const char *iqn, const char *alias)
{
    struct obj *t = new_obj(K_TARGET, label);
    add_face(t, &I_IVdsIscsiTarget);
    snprintf(t->name, sizeof t->name, "%s", iqn);
    snprintf(t->alias, sizeof t->alias, "%s", alias ? alias : "");
    push(subsystem->subs, &subsystem->nsubs, t);
    return t;
}

static struct obj *group(struct obj *target, const char *label, uint16_t tag)
{
    struct obj *g = new_obj(K_GROUP, label);
    add_face(g, &I_IVdsIscsiPortalGroup);
    g->tag = tag;
    g->parent = target;
    push(target->subs, &target->nsubs, g);
    return g;
}

/* A new world; the objects of earlier worlds stay in memory (late releases land there harmlessly). */
EXPORT void fv_world(int second_provider)
{
    pthread_mutex_lock(&lock);
    world++;
    nfaults = 0;
    last_async = NULL;
    reset_text(&calls);
    reset_text(&problems);
    struct obj *service = new_obj(K_SERVICE, "service");
    add_face(service, &I_IVdsService);
    the_loader = new_obj(K_LOADER, "loader");
    add_face(the_loader, &I_IVdsServiceLoader);
    push(the_loader->subs, &the_loader->nsubs, service);

    struct obj *software = new_obj(K_SOFTWARE, "software");
    add_face(software, &I_IVdsProvider);
    push(service->items, &service->nitems, software);
    struct obj *fibre = provider(service, "fibre", 2);
    subsystem(fibre, "fc", "fc-array", 1);
    struct obj *iscsi = provider(service, "iscsi", 3);
    subsystem(iscsi, "plain", "raid-only", 0);
    struct obj *a = subsystem(iscsi, "a", "array-a", 1);
    subsystem(iscsi, "b", "", 1);

    static const uint8_t fd01[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    struct obj *p1 = portal(a, "p1", 1, 0x0A000001, NULL, NULL, 3260, 1);
    struct obj *p2 = portal(a, "p2", 1, 0x0A000002, NULL, NULL, 3261, 4);
    struct obj *p3 = portal(a, "p3", 2, 0, fd01, NULL, 3260, 2);
    portal(a, "p4", 0, 0, NULL, " 10.0.0.9 ", 860, 5);
    portal(a, "p5", 3, 0, NULL, NULL, 0, 9);
    portal(a, "p6", 1, 0xC0A80001, NULL, NULL, 3260, 1);

    struct obj *t1 = target(a, "t1", "iqn.1991-05.com.microsoft:array-a-t1", "t1");
    target(a, "t2", "iqn.1991-05.com.microsoft:array-a-t2", NULL);
    struct obj *g1 = group(t1, "g1", 1);
    push(g1->items, &g1->nitems, p1);
    push(g1->items, &g1->nitems, p2);
    struct obj *g2 = group(t1, "g2", 2);
    push(g2->items, &g2->nitems, p3);

    if (second_provider) {
        struct obj *other = provider(service, "other", 3);
        subsystem(other, "c", "array-c", 1);
    }
    pthread_mutex_unlock(&lock);
}

/* The seam the class creates its loader through in tests: one reference, the caller's. */
EXPORT void *fv_loader(void)
{
    return hand(the_loader, &I_IVdsServiceLoader);
}

/* ---- what the harness scripts and reads ---- */

EXPORT int fv_id(const char *label, GUID *id)
{
    struct obj *o = find_label(label);
    if (!o) {
        return 0;
    }
    *id = o->id;
    return 1;
}

EXPORT void fv_fault(const char *key, HRESULT hr, int times)
{
    if (nfaults == (int)(sizeof faults / sizeof faults[0])) {
        abort();
    }
    snprintf(faults[nfaults].key, sizeof faults[nfaults].key, "%s", key);
    faults[nfaults].hr = hr;
    faults[nfaults].times = times;
    nfaults++;
}

/* QueryStatus answers of the operation started last, before its final answer. */
EXPORT int fv_progress(HRESULT hr, uint32_t percent)
{
    if (!last_async || last_async->nprogress == 8) {
        return 0;
    }
    last_async->progress_hr[last_async->nprogress] = hr;
    last_async->progress_pct[last_async->nprogress] = percent;
    last_async->nprogress++;
    return 1;
}

EXPORT int fv_cap(const char *label, int cap)
{
    struct obj *o = find_label(label);
    if (!o) {
        return 0;
    }
    o->cap = cap;
    return 1;
}

EXPORT const char *fv_calls(void)
{
    return calls.data ? calls.data : "";
}

EXPORT void fv_clear_calls(void)
{
    reset_text(&calls);
}

/* Labels of a group's members or a target's groups, comma-separated. */
static char listing[1024];
EXPORT const char *fv_list(const char *label)
{
    struct obj *o = find_label(label);
    listing[0] = '\0';
    if (!o) {
        return "?";
    }
    struct obj **list = o->kind == K_GROUP ? o->items : o->subs;
    int n = o->kind == K_GROUP ? o->nitems : o->nsubs;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(listing);
        snprintf(listing + len, sizeof listing - len, "%s%s", i ? "," : "", list[i]->label);
    }
    return listing;
}

EXPORT int fv_status(const char *label)
{
    struct obj *o = find_label(label);
    return o ? o->status : -1;
}

/* For the harness's check of the audit itself: an object's IUnknown (one reference, the caller's),
 * and deleting an object as a provider would. */
EXPORT void *fv_object(const char *label)
{
    struct obj *o = find_label(label);
    return o ? hand(o, NULL) : NULL;
}

EXPORT void fv_delete(const char *label)
{
    struct obj *o = find_label(label);
    if (o) {
        o->deleted = 1;
    }
}

/* A string handed out like the provider's, for the harness to check that free() is observed. */
EXPORT void *fv_probe_string(void)
{
    return hand_string("probe", "probe string");
}

EXPORT int fv_frees(void *p)
{
    for (size_t i = nstrings; i-- > 0;) {
        if (strings[i].p == p) {
            return strings[i].frees;
        }
    }
    return -1;
}

/*
 * Everything wrong so far, one line each ("" when all is well): calls that reached deleted or
 * destroyed objects, releases too many; objects of this world whose count is not back at the
 * baseline (the world's own reference; each label in `held`, a comma-separated list
 * of the objects the caller keeps, which must have more); enumerations not destroyed; strings of this
 * world not freed exactly once.
 */
static struct text audit;
EXPORT const char *fv_audit(const char *held)
{
    pthread_mutex_lock(&lock);
    reset_text(&audit);
    append(&audit, "%s", problems.data ? problems.data : "");
    for (size_t i = 0; i < nobjects; i++) {
        struct obj *o = objects[i];
        if (o->world != world) {
            continue;
        }
        int baseline = o->transient ? 0 : 1;
        int kept = 0;
        size_t n = strlen(o->label);
        for (const char *h = held; h && *h;) {
            const char *end = strchr(h, ',');
            size_t len = end ? (size_t)(end - h) : strlen(h);
            kept |= len == n && strncmp(h, o->label, n) == 0;
            h = end ? end + 1 : h + len;
        }
        /* How many references a runtime wrapper holds is the runtime's business; none is exact. */
        if (kept && o->refs <= baseline) {
            append(&audit, "%s: %d references, the caller should still hold it\n", o->label, o->refs);
        } else if (!kept && o->refs != baseline) {
            append(&audit, "%s: %d references, expected %d\n", o->label, o->refs, baseline);
        }
    }
    for (size_t i = 0; i < nstrings; i++) {
        if (strings[i].world == world && strings[i].frees != 1) {
            append(&audit, "%s: freed %d times, expected once\n", strings[i].what, strings[i].frees);
        }
    }
    pthread_mutex_unlock(&lock);
    return audit.data ? audit.data : "";
}

/* The interfaces of the fake: the harness compares the class's declarations with their vtables. */
static const struct iface *const all_ifaces[] = {
    &I_IVdsServiceLoader,    &I_IVdsService,     &I_IEnumVdsObject, &I_IVdsAsync,
    &I_IVdsProvider,         &I_IVdsHwProvider,  &I_IVdsHwProviderType,
    &I_IVdsSubSystem,        &I_IVdsSubSystemIscsi, &I_IVdsIscsiTarget,
    &I_IVdsIscsiPortalGroup, &I_IVdsIscsiPortal,
};

static const struct iface *iface_named(const char *name)
{
    for (size_t i = 0; i < sizeof all_ifaces / sizeof all_ifaces[0]; i++) {
        if (strcmp(all_ifaces[i]->name, name) == 0) {
            return all_ifaces[i];
        }
    }
    return NULL;
}

/* The number of slots of an interface's vtable (IUnknown's three included), 0 when unknown. */
EXPORT int fv_slots(const char *name)
{
    const struct iface *f = iface_named(name);
    return f ? 3 + f->nnames : 0;
}

/* The method at a slot of an interface's vtable, NULL past its end. */
EXPORT const char *fv_slot(const char *name, int slot)
{
    static const char *const iunknown[] = {"QueryInterface", "AddRef", "Release"};
    const struct iface *f = iface_named(name);
    if (!f || slot < 0 || slot >= 3 + f->nnames) {
        return NULL;
    }
    return slot < 3 ? iunknown[slot] : f->names[slot - 3];
}

/* Sizes and offsets of the structures, for the harness to compare with the class's declarations. */
EXPORT int fv_layout(const char *what)
{
    static const struct {
        const char *name;
        int value;
    } table[] = {
        {"VDS_IPADDRESS", sizeof(VDS_IPADDRESS)},
        {"VDS_IPADDRESS.type", offsetof(VDS_IPADDRESS, type)},
        {"VDS_IPADDRESS.ipv4Address", offsetof(VDS_IPADDRESS, ipv4Address)},
        {"VDS_IPADDRESS.ipv6Address", offsetof(VDS_IPADDRESS, ipv6Address)},
        {"VDS_IPADDRESS.ulIpv6FlowInfo", offsetof(VDS_IPADDRESS, ulIpv6FlowInfo)},
        {"VDS_IPADDRESS.ulIpv6ScopeId", offsetof(VDS_IPADDRESS, ulIpv6ScopeId)},
        {"VDS_IPADDRESS.wszTextAddress", offsetof(VDS_IPADDRESS, wszTextAddress)},
        {"VDS_IPADDRESS.ulPort", offsetof(VDS_IPADDRESS, ulPort)},
        {"VDS_ISCSI_PORTAL_PROP", sizeof(VDS_ISCSI_PORTAL_PROP)},
        {"VDS_ISCSI_PORTAL_PROP.id", offsetof(VDS_ISCSI_PORTAL_PROP, id)},
        {"VDS_ISCSI_PORTAL_PROP.address", offsetof(VDS_ISCSI_PORTAL_PROP, address)},
        {"VDS_ISCSI_PORTAL_PROP.status", offsetof(VDS_ISCSI_PORTAL_PROP, status)},
        {"VDS_ISCSI_PORTALGROUP_PROP", sizeof(VDS_ISCSI_PORTALGROUP_PROP)},
        {"VDS_ISCSI_PORTALGROUP_PROP.id", offsetof(VDS_ISCSI_PORTALGROUP_PROP, id)},
        {"VDS_ISCSI_PORTALGROUP_PROP.tag", offsetof(VDS_ISCSI_PORTALGROUP_PROP, tag)},
        {"VDS_ISCSI_TARGET_PROP", sizeof(VDS_ISCSI_TARGET_PROP)},
        {"VDS_ISCSI_TARGET_PROP.id", offsetof(VDS_ISCSI_TARGET_PROP, id)},
        {"VDS_ISCSI_TARGET_PROP.pwszIscsiName", offsetof(VDS_ISCSI_TARGET_PROP, pwszIscsiName)},
        {"VDS_ISCSI_TARGET_PROP.pwszFriendlyName", offsetof(VDS_ISCSI_TARGET_PROP, pwszFriendlyName)},
        {"VDS_ISCSI_TARGET_PROP.bChapEnabled", offsetof(VDS_ISCSI_TARGET_PROP, bChapEnabled)},
        {"VDS_SUB_SYSTEM_PROP", sizeof(VDS_SUB_SYSTEM_PROP)},
        {"VDS_SUB_SYSTEM_PROP.id", offsetof(VDS_SUB_SYSTEM_PROP, id)},
        {"VDS_SUB_SYSTEM_PROP.pwszFriendlyName", offsetof(VDS_SUB_SYSTEM_PROP, pwszFriendlyName)},
        {"VDS_SUB_SYSTEM_PROP.pwszIdentification", offsetof(VDS_SUB_SYSTEM_PROP, pwszIdentification)},
        {"VDS_SUB_SYSTEM_PROP.ulFlags", offsetof(VDS_SUB_SYSTEM_PROP, ulFlags)},
        {"VDS_SUB_SYSTEM_PROP.ulStripeSizeFlags", offsetof(VDS_SUB_SYSTEM_PROP, ulStripeSizeFlags)},
        {"VDS_SUB_SYSTEM_PROP.status", offsetof(VDS_SUB_SYSTEM_PROP, status)},
        {"VDS_SUB_SYSTEM_PROP.health", offsetof(VDS_SUB_SYSTEM_PROP, health)},
        {"VDS_SUB_SYSTEM_PROP.sNumberOfInternalBuses", offsetof(VDS_SUB_SYSTEM_PROP, sNumberOfInternalBuses)},
        {"VDS_SUB_SYSTEM_PROP.sMaxNumberOfSlotsEachBus", offsetof(VDS_SUB_SYSTEM_PROP, sMaxNumberOfSlotsEachBus)},
        {"VDS_SUB_SYSTEM_PROP.sMaxNumberOfControllers", offsetof(VDS_SUB_SYSTEM_PROP, sMaxNumberOfControllers)},
        {"VDS_SUB_SYSTEM_PROP.sRebuildPriority", offsetof(VDS_SUB_SYSTEM_PROP, sRebuildPriority)},
        {"VDS_ASYNC_OUTPUT", sizeof(VDS_ASYNC_OUTPUT)},
        {"VDS_ASYNC_OUTPUT.type", offsetof(VDS_ASYNC_OUTPUT, type)},
        {"VDS_ASYNC_OUTPUT.pUnknown", offsetof(VDS_ASYNC_OUTPUT, u.cpg.pPortalGroupUnk)},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(table[i].name, what) == 0) {
            return table[i].value;
        }
    }
    return -1;
}
