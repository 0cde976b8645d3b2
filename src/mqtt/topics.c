/* The topic trie: subscriptions, shared-subscription groups and retained messages.
 *
 * One node per topic level; the root's children are namespaces ("t42", "anon", "$sys"), so a
 * match never leaves the namespace it starts in. A node keeps its literal children in a list,
 * switched to a hash index when it has more than INDEX_AT of them (v1/devices/<name>/... under a
 * tenant has one child per device), and its '+' and '#' children apart, so matching a topic of n
 * levels visits at most the nodes that can match:
 *
 *   visit(node, level i): the '#' child's subscriptions match (what remains, even nothing:
 *   "a/#" matches "a"); if i is the last level, node's own subscriptions match; else descend
 *   into the literal child for level i and into the '+' child.
 *
 * Invariants: a node exists while it, or something below it, has a subscription, a group or a
 * retained message; retained_below counts the retained messages in a node's subtree (itself
 * included), so a retained lookup for a wildcard filter skips empty subtrees. Topics and filters
 * have at most MQTT_LEVELS_MAX levels (access.c refuses deeper ones), which bounds recursion.
 *
 * Shared subscriptions ($share/<group>/<filter>): a node holds its groups; a message matching the
 * filter goes to one member of each group, round robin, preferring members that are connected.
 */
#include "mqtt/mqtt_int.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_AT 8

typedef struct share_group {
  struct share_group *next;
  mqtt_sub *members;
  mqtt_sub *cursor; /* the member that got the last message */
  uint16_t name_len;
  char name[];
} share_group;

typedef struct tnode {
  struct tnode *parent;
  struct tnode *children; /* literal children, linked by next */
  struct tnode *next;
  pl_map *index;          /* level -> child, once there are more than INDEX_AT */
  struct tnode *plus, *hash;
  mqtt_sub *subs;
  share_group *groups;
  mqtt_msg *retained;
  uint32_t nchildren;
  uint32_t retained_below;
  uint16_t level_len;
  char level[];
} tnode;

struct mqtt_topics {
  tnode *root;
  size_t nretained, nsubs;
};

static tnode *node_new(tnode *parent, const char *level, size_t len) {
  tnode *n = calloc(1, sizeof *n + len + 1);
  if (!n) return NULL;
  n->parent = parent;
  n->level_len = (uint16_t)len;
  memcpy(n->level, level, len);
  return n;
}

mqtt_topics *mqtt__topics_new(void) {
  mqtt_topics *t = calloc(1, sizeof *t);
  if (t && !(t->root = node_new(NULL, "", 0))) {
    free(t);
    return NULL;
  }
  return t;
}

static void node_free(tnode *n) {
  if (!n) return;
  tnode *c = n->children;
  while (c) {
    tnode *next = c->next;
    node_free(c);
    c = next;
  }
  node_free(n->plus);
  node_free(n->hash);
  pl_map_free(n->index);
  if (n->retained) mqtt__msg_unref(n->retained);
  share_group *g = n->groups;
  while (g) {
    share_group *next = g->next;
    free(g);
    g = next;
  }
  /* Subscriptions belong to their sessions, which remove them before the trie goes. */
  free(n);
}

void mqtt__topics_free(mqtt_topics *t) {
  if (!t) return;
  node_free(t->root);
  free(t);
}

/* ---- children ---- */

static int is_plus(const char *l, size_t n) {
  return n == 1 && l[0] == '+';
}

static int is_hash(const char *l, size_t n) {
  return n == 1 && l[0] == '#';
}

static tnode *child_find(const tnode *n, const char *level, size_t len) {
  if (n->index) return pl_map_get(n->index, level, len);
  for (tnode *c = n->children; c; c = c->next)
    if (c->level_len == len && memcmp(c->level, level, len) == 0) return c;
  return NULL;
}

/* The child for a filter level (wildcards are kept apart), created when create is set. */
static tnode *child_get(tnode *n, const char *level, size_t len, int create) {
  tnode **wild = is_plus(level, len) ? &n->plus : is_hash(level, len) ? &n->hash : NULL;
  if (wild) {
    if (!*wild && create) *wild = node_new(n, level, len);
    return *wild;
  }
  tnode *c = child_find(n, level, len);
  if (c || !create) return c;
  if (!(c = node_new(n, level, len))) return NULL;
  if (n->nchildren >= INDEX_AT && !n->index) {
    pl_map *m = pl_map_new();
    if (!m) {
      free(c);
      return NULL;
    }
    for (tnode *k = n->children; k; k = k->next) {
      if (pl_map_put(m, k->level, k->level_len, k, NULL) < 0) {
        pl_map_free(m);
        free(c);
        return NULL;
      }
    }
    n->index = m;
  }
  if (n->index && pl_map_put(n->index, level, len, c, NULL) < 0) {
    free(c);
    return NULL;
  }
  c->next = n->children;
  n->children = c;
  n->nchildren++;
  return c;
}

static int node_empty(const tnode *n) {
  return !n->subs && !n->groups && !n->retained && !n->children && !n->plus && !n->hash;
}

/* Removes empty nodes from n upwards (never the root). */
static void prune(tnode *n) {
  while (n && n->parent && node_empty(n)) {
    tnode *p = n->parent;
    if (p->plus == n) {
      p->plus = NULL;
    } else if (p->hash == n) {
      p->hash = NULL;
    } else {
      tnode **pp = &p->children;
      while (*pp && *pp != n) pp = &(*pp)->next;
      if (*pp) *pp = n->next;
      if (p->index) pl_map_del(p->index, n->level, n->level_len);
      p->nchildren--;
      if (p->index && p->nchildren < INDEX_AT / 2) {
        pl_map_free(p->index);
        p->index = NULL;
      }
    }
    free(n);
    n = p;
  }
}

/* Walks (creating when asked) the nodes of ns then each level of path. */
static tnode *walk(mqtt_topics *t, const char *ns, const char *path, size_t len, int create) {
  tnode *n = child_get(t->root, ns, strlen(ns), create);
  size_t i = 0;
  while (n) {
    size_t j = i;
    while (j < len && path[j] != '/') j++;
    n = child_get(n, path + i, j - i, create);
    if (j >= len) break;
    i = j + 1;
  }
  return n;
}

/* ---- subscriptions ---- */

static void list_add(mqtt_sub **head, mqtt_sub *s) {
  s->node_prev = NULL;
  s->node_next = *head;
  if (*head) (*head)->node_prev = s;
  *head = s;
}

int mqtt__topics_add(mqtt_topics *t, const char *ns, const char *filter, size_t flen, const char *group, size_t glen,
                     mqtt_sub *sub) {
  tnode *n = walk(t, ns, filter, flen, 1);
  if (!n) {
    /* A half-built path would be left empty: take it down again. */
    tnode *partial = walk(t, ns, filter, flen, 0);
    (void)partial;
    return PL_ENOMEM;
  }
  sub->node = n;
  sub->group = NULL;
  if (group) {
    share_group *g = n->groups;
    while (g && !(g->name_len == glen && memcmp(g->name, group, glen) == 0)) g = g->next;
    if (!g) {
      if (!(g = calloc(1, sizeof *g + glen + 1))) {
        prune(n);
        return PL_ENOMEM;
      }
      g->name_len = (uint16_t)glen;
      memcpy(g->name, group, glen);
      g->next = n->groups;
      n->groups = g;
    }
    sub->group = g;
    list_add(&g->members, sub);
  } else {
    list_add(&n->subs, sub);
  }
  t->nsubs++;
  return 0;
}

void mqtt__topics_remove(mqtt_topics *t, mqtt_sub *sub) {
  tnode *n = sub->node;
  if (!n) return;
  share_group *g = sub->group;
  mqtt_sub **head = g ? &g->members : &n->subs;
  if (sub->node_prev) sub->node_prev->node_next = sub->node_next;
  else *head = sub->node_next;
  if (sub->node_next) sub->node_next->node_prev = sub->node_prev;
  if (g) {
    if (g->cursor == sub) g->cursor = NULL;
    if (!g->members) {
      share_group **gp = &n->groups;
      while (*gp != g) gp = &(*gp)->next;
      *gp = g->next;
      free(g);
    }
  }
  sub->node = NULL;
  sub->group = NULL;
  t->nsubs--;
  prune(n);
}

/* ---- matching ---- */

typedef struct match_ctx {
  void (*cb)(void *ctx, mqtt_sub *sub);
  void *ctx;
} match_ctx;

static void deliver_group(share_group *g, const match_ctx *m) {
  /* Round robin from the member after the cursor, preferring one that is connected. */
  mqtt_sub *start = g->cursor && g->cursor->node_next ? g->cursor->node_next : g->members;
  mqtt_sub *pick = NULL, *s = start;
  do {
    if (s->sess && s->sess->conn) {
      pick = s;
      break;
    }
    s = s->node_next ? s->node_next : g->members;
  } while (s != start);
  if (!pick) pick = start;
  g->cursor = pick;
  m->cb(m->ctx, pick);
}

static void deliver_node(const tnode *n, const match_ctx *m) {
  for (mqtt_sub *s = n->subs; s;) {
    mqtt_sub *next = s->node_next; /* the callback does not change the trie, but be safe */
    m->cb(m->ctx, s);
    s = next;
  }
  for (share_group *g = n->groups; g; g = g->next)
    if (g->members) deliver_group(g, m);
}

static void match_at(const tnode *n, const char *topic, size_t len, size_t i, const match_ctx *m) {
  if (n->hash) deliver_node(n->hash, m);
  if (i > len) {
    deliver_node(n, m);
    return;
  }
  size_t j = i;
  while (j < len && topic[j] != '/') j++;
  const tnode *c = child_find(n, topic + i, j - i);
  if (c) match_at(c, topic, len, j + 1, m);
  if (n->plus) match_at(n->plus, topic, len, j + 1, m);
}

void mqtt__topics_match(mqtt_topics *t, const char *ns, const char *topic, size_t len,
                        void (*cb)(void *ctx, mqtt_sub *sub), void *ctx) {
  const tnode *n = child_find(t->root, ns, strlen(ns));
  if (!n) return;
  match_ctx m = {cb, ctx};
  /* Position i is the start of the next level; i == len + 1 means every level was consumed. The
   * namespace node itself has no subscriptions: topics have at least one level. */
  size_t j = 0;
  while (j < len && topic[j] != '/') j++;
  if (n->hash) deliver_node(n->hash, &m);
  const tnode *c = child_find(n, topic, j);
  if (c) match_at(c, topic, len, j + 1, &m);
  if (n->plus) match_at(n->plus, topic, len, j + 1, &m);
}

/* ---- retained messages ---- */

static void retained_adjust(tnode *n, int delta) {
  for (; n; n = n->parent) n->retained_below = (uint32_t)((int)n->retained_below + delta);
}

int mqtt__topics_retain(mqtt_topics *t, const char *ns, const char *topic, size_t len, mqtt_msg *m) {
  int clear = m->payload_len == 0;
  tnode *n = walk(t, ns, topic, len, !clear);
  if (!n) return clear ? 0 : PL_ENOMEM;
  if (n->retained) {
    mqtt__msg_unref(n->retained);
    n->retained = NULL;
    t->nretained--;
    retained_adjust(n, -1);
  }
  if (!clear) {
    n->retained = mqtt__msg_ref(m);
    t->nretained++;
    retained_adjust(n, 1);
  }
  prune(n);
  return 0;
}

typedef struct retained_ctx {
  void (*cb)(void *ctx, mqtt_msg *m);
  void *ctx;
} retained_ctx;

static void retained_all(const tnode *n, const retained_ctx *r) {
  if (!n->retained_below) return;
  if (n->retained) r->cb(r->ctx, n->retained);
  if (n->index) {
    size_t it = 0;
    const void *k;
    size_t kl;
    void *v;
    while (pl_map_next(n->index, &it, &k, &kl, &v)) retained_all(v, r);
  } else {
    for (const tnode *c = n->children; c; c = c->next) retained_all(c, r);
  }
}

static void retained_at(const tnode *n, const char *filter, size_t len, size_t i, const retained_ctx *r) {
  if (!n->retained_below) return;
  if (i > len) {
    if (n->retained) r->cb(r->ctx, n->retained);
    return;
  }
  size_t j = i;
  while (j < len && filter[j] != '/') j++;
  const char *level = filter + i;
  size_t ll = j - i;
  if (is_hash(level, ll)) {
    retained_all(n, r); /* "a/#" includes "a" itself */
    return;
  }
  if (is_plus(level, ll)) {
    if (n->index) {
      size_t it = 0;
      const void *k;
      size_t kl;
      void *v;
      while (pl_map_next(n->index, &it, &k, &kl, &v)) retained_at(v, filter, len, j + 1, r);
    } else {
      for (const tnode *c = n->children; c; c = c->next) retained_at(c, filter, len, j + 1, r);
    }
    return;
  }
  const tnode *c = child_find(n, level, ll);
  if (c) retained_at(c, filter, len, j + 1, r);
}

void mqtt__topics_retained(mqtt_topics *t, const char *ns, const char *filter, size_t flen,
                           void (*cb)(void *ctx, mqtt_msg *m), void *ctx) {
  const tnode *n = child_find(t->root, ns, strlen(ns));
  if (!n) return;
  retained_ctx r = {cb, ctx};
  /* The namespace node is level "-1": the filter's first level starts at 0. */
  size_t j = 0;
  while (j < flen && filter[j] != '/') j++;
  if (is_hash(filter, j)) {
    /* Everything in the namespace, but not the namespace node itself (it holds nothing). */
    if (n->index) {
      size_t it = 0;
      const void *k;
      size_t kl;
      void *v;
      while (pl_map_next(n->index, &it, &k, &kl, &v)) retained_all(v, &r);
    } else {
      for (const tnode *c = n->children; c; c = c->next) retained_all(c, &r);
    }
    return;
  }
  if (is_plus(filter, j)) {
    if (n->index) {
      size_t it = 0;
      const void *k;
      size_t kl;
      void *v;
      while (pl_map_next(n->index, &it, &k, &kl, &v)) retained_at(v, filter, flen, j + 1, &r);
    } else {
      for (const tnode *c = n->children; c; c = c->next) retained_at(c, filter, flen, j + 1, &r);
    }
    return;
  }
  const tnode *c = child_find(n, filter, j);
  if (c) retained_at(c, filter, flen, j + 1, &r);
}

size_t mqtt__topics_retained_count(const mqtt_topics *t) {
  return t->nretained;
}

size_t mqtt__topics_sub_count(const mqtt_topics *t) {
  return t->nsubs;
}
