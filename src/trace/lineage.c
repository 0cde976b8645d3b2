/* Lineage: the graph of an identifier's history through aggregation (parent/child),
 * transformation (input/output) and transaction links, walked breadth-first over the events
 * the asker may see. Bounded by depth (<= TRACE_DEPTH_MAX hops) and a node count; when a bound
 * cuts the walk the result says where ("stopped"), so a recall report never silently omits.
 *
 * Directions: "down" follows an identifier to what was made from it or packed around it
 * (input -> output, child -> parent while aggregated, and the children of a container it is
 * the parent of, since a recalled pallet holds its cases); "up" follows to its sources (output
 * -> input, parent -> child). Transaction events link their parent and members both ways. */
#include "trace/trace.h"

#include "base/clock.h"
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

typedef struct node {
  char *epc;
  int depth;
  int dir; /* direction it was reached in */
  json_t *last; /* last event naming it (by event time) */
  int64_t last_time;
  char *location, *disposition; /* the latest known (bizLocation, else readPoint) */
  int64_t location_time, disposition_time;
} node;

typedef struct walk {
  node *nodes;
  size_t n, cap, max;
  json_t *edges;
  json_t *stopped;
  int64_t viewer;
  int direction;
  size_t cur;
  int truncated;
  /* a simple open-addressing set of epc -> node index */
  size_t *slots;
  size_t nslots;
} walk;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static long find(walk *w, const char *epc) {
  size_t i = hash_str(epc) & (w->nslots - 1);
  while (w->slots[i]) {
    if (strcmp(w->nodes[w->slots[i] - 1].epc, epc) == 0)
      return (long)(w->slots[i] - 1);
    i = (i + 1) & (w->nslots - 1);
  }
  return -1;
}

static int grow_set(walk *w) {
  size_t nslots = w->nslots ? w->nslots * 2 : 1024;
  size_t *slots = calloc(nslots, sizeof *slots);
  if (!slots)
    return PL_ENOMEM;
  for (size_t k = 0; k < w->n; k++) {
    size_t i = hash_str(w->nodes[k].epc) & (nslots - 1);
    while (slots[i])
      i = (i + 1) & (nslots - 1);
    slots[i] = k + 1;
  }
  free(w->slots);
  w->slots = slots;
  w->nslots = nslots;
  return 0;
}

/* Adds epc unless present; returns its index, or -1 when the node bound is reached. */
static long add_node(walk *w, const char *epc, int depth, int dir, int *rc) {
  long at = find(w, epc);
  if (at >= 0)
    return at;
  if (w->n >= w->max) {
    w->truncated = 1;
    return -1;
  }
  if ((w->n + 1) * 2 > w->nslots && (*rc = grow_set(w)) < 0)
    return -1;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    node *nodes = realloc(w->nodes, cap * sizeof *nodes);
    if (!nodes) {
      *rc = PL_ENOMEM;
      return -1;
    }
    w->nodes = nodes;
    w->cap = cap;
  }
  node *n = &w->nodes[w->n];
  memset(n, 0, sizeof *n);
  n->epc = strdup(epc);
  if (!n->epc) {
    *rc = PL_ENOMEM;
    return -1;
  }
  n->depth = depth;
  n->dir = dir;
  size_t i = hash_str(epc) & (w->nslots - 1);
  while (w->slots[i])
    i = (i + 1) & (w->nslots - 1);
  w->slots[i] = w->n + 1;
  return (long)w->n++;
}

static int is_role(int role, int a, int b) {
  return role == a || role == b;
}

/* Whether the link from self to other goes in direction dir (TRACE_UP or TRACE_DOWN), and
 * its kind. */
static const char *link_kind(const store_trace_link *l, int dir) {
  int self = l->self_role, other = l->other_role;
  switch (l->type) {
  case STORE_TRACE_TRANSFORMATION:
    if (dir == TRACE_DOWN && is_role(self, STORE_TRACE_ROLE_INPUT, STORE_TRACE_ROLE_INPUT_CLASS) &&
        is_role(other, STORE_TRACE_ROLE_OUTPUT, STORE_TRACE_ROLE_OUTPUT_CLASS))
      return "transformation";
    if (dir == TRACE_UP && is_role(self, STORE_TRACE_ROLE_OUTPUT, STORE_TRACE_ROLE_OUTPUT_CLASS) &&
        is_role(other, STORE_TRACE_ROLE_INPUT, STORE_TRACE_ROLE_INPUT_CLASS))
      return "transformation";
    return NULL;
  case STORE_TRACE_AGGREGATION:
  case STORE_TRACE_ASSOCIATION:
    if (l->action && strcmp(l->action, "DELETE") == 0)
      return NULL;
    /* down: a child goes into its container; a container holds its children (both are
     * affected by a recall of what is inside); up: a container's contents came from them. */
    if (dir == TRACE_DOWN && is_role(self, STORE_TRACE_ROLE_CHILD, STORE_TRACE_ROLE_CHILD_CLASS) &&
        other == STORE_TRACE_ROLE_PARENT)
      return "aggregation";
    if (dir == TRACE_UP && self == STORE_TRACE_ROLE_PARENT &&
        is_role(other, STORE_TRACE_ROLE_CHILD, STORE_TRACE_ROLE_CHILD_CLASS))
      return "aggregation";
    return NULL;
  case STORE_TRACE_TRANSACTION:
    if (dir == TRACE_DOWN && self != STORE_TRACE_ROLE_PARENT && other == STORE_TRACE_ROLE_PARENT)
      return "transaction";
    if (dir == TRACE_UP && self == STORE_TRACE_ROLE_PARENT && other != STORE_TRACE_ROLE_PARENT)
      return "transaction";
    return NULL;
  default: return NULL;
  }
}

static json_t *event_summary(const store_trace_link *l) {
  char t[48];
  pl_time_format(l->event_time_ms * 1000000, t, sizeof t);
  json_t *o = json_pack("{s:s, s:s, s:I}", "type", trace_type_name(l->type) ? trace_type_name(l->type) : "", "eventTime",
                        t, "event", (json_int_t)l->event);
  if (!o)
    return NULL;
  if (l->action)
    json_object_set_new(o, "action", json_string(l->action));
  if (l->biz_step)
    json_object_set_new(o, "bizStep", json_string(l->biz_step));
  if (l->disposition)
    json_object_set_new(o, "disposition", json_string(l->disposition));
  if (l->read_point)
    json_object_set_new(o, "readPoint", json_string(l->read_point));
  if (l->biz_location)
    json_object_set_new(o, "bizLocation", json_string(l->biz_location));
  return o;
}

typedef struct visit {
  walk *w;
  size_t idx;
  int depth_limit;
  int rc;
} visit;

static int on_link(void *ctx, const store_trace_link *l) {
  visit *v = ctx;
  walk *w = v->w;
  node *self = &w->nodes[v->idx];
  if (l->event_time_ms >= self->last_time || !self->last) {
    json_t *s = event_summary(l);
    if (!s)
      return PL_ENOMEM;
    json_decref(self->last);
    self->last = s;
    self->last_time = l->event_time_ms;
  }
  const char *loc = l->biz_location ? l->biz_location : l->read_point;
  if (loc && (!self->location || l->event_time_ms >= self->location_time)) {
    char *c = strdup(loc);
    if (!c)
      return PL_ENOMEM;
    free(self->location);
    self->location = c;
    self->location_time = l->event_time_ms;
  }
  if (l->disposition && (!self->disposition || l->event_time_ms >= self->disposition_time)) {
    char *c = strdup(l->disposition);
    if (!c)
      return PL_ENOMEM;
    free(self->disposition);
    self->disposition = c;
    self->disposition_time = l->event_time_ms;
  }
  if (!l->other)
    return 0;
  for (int dir = TRACE_UP; dir <= TRACE_DOWN; dir <<= 1) {
    if (!(w->direction & dir))
      continue;
    /* keep one direction along a path, so "both" does not wander sideways into siblings */
    if (self->dir && self->dir != dir)
      continue;
    const char *kind = link_kind(l, dir);
    if (!kind)
      continue;
    if (self->depth >= v->depth_limit) {
      json_t *st = json_pack("{s:s, s:s}", "epc", self->epc, "reason", "depth");
      if (st)
        json_array_append_new(w->stopped, st);
      continue;
    }
    int rc = 0;
    long had = find(w, l->other);
    long at = add_node(w, l->other, self->depth + 1, dir, &rc);
    self = &w->nodes[v->idx]; /* add_node may have moved the array */
    if (rc < 0)
      return rc;
    if (at < 0) {
      json_t *st = json_pack("{s:s, s:s}", "epc", l->other, "reason", "node limit");
      if (st)
        json_array_append_new(w->stopped, st);
      continue;
    }
    (void)had;
    json_t *e = json_pack("{s:s, s:s, s:s, s:I}", "from", dir == TRACE_DOWN ? self->epc : l->other, "to",
                          dir == TRACE_DOWN ? l->other : self->epc, "kind", kind, "event", (json_int_t)l->event);
    if (!e || json_array_append_new(w->edges, e) < 0)
      return PL_ENOMEM;
  }
  return 0;
}

json_t *trace_lineage(store *s, int64_t viewer, const char *epc, int direction, int depth, size_t max_nodes,
                      int *rc_out) {
  walk w;
  memset(&w, 0, sizeof w);
  w.viewer = viewer;
  w.direction = direction;
  w.max = max_nodes ? max_nodes : TRACE_NODES_MAX;
  if (depth > TRACE_DEPTH_MAX)
    depth = TRACE_DEPTH_MAX;
  w.edges = json_array();
  w.stopped = json_array();
  int rc = (w.edges && w.stopped) ? grow_set(&w) : PL_ENOMEM;
  if (rc == 0)
    add_node(&w, epc, 0, 0, &rc);
  for (size_t i = 0; rc == 0 && i < w.n; i++) {
    visit v = {&w, i, depth, 0};
    int n = store_trace_links(s, viewer, w.nodes[i].epc, on_link, &v);
    if (n < 0)
      rc = n;
    /* Events of other enterprises that are not shared with the asker: the walk cannot go on
     * through them, and says so (without saying what they are). */
    int hidden = rc == 0 ? store_trace_epc_hidden(s, viewer, w.nodes[i].epc) : 0;
    if (hidden < 0)
      rc = hidden;
    else if (hidden > 0) {
      json_t *st = json_pack("{s:s, s:s, s:i}", "epc", w.nodes[i].epc, "reason", "events not visible to you",
                             "events", hidden);
      if (st)
        json_array_append_new(w.stopped, st);
    }
  }
  json_t *out = NULL;
  if (rc == 0) {
    json_t *nodes = json_array();
    for (size_t i = 0; nodes && i < w.n; i++) {
      json_t *o = json_pack("{s:s, s:i, s:s}", "epc", w.nodes[i].epc, "depth", w.nodes[i].depth, "direction",
                            w.nodes[i].dir == TRACE_UP ? "up" : w.nodes[i].dir == TRACE_DOWN ? "down" : "root");
      if (o && w.nodes[i].last)
        json_object_set(o, "lastEvent", w.nodes[i].last);
      if (o)
        json_object_set_new(o, "location", w.nodes[i].location ? json_string(w.nodes[i].location) : json_null());
      if (o)
        json_object_set_new(o, "disposition",
                            w.nodes[i].disposition ? json_string(w.nodes[i].disposition) : json_null());
      if (o)
        json_array_append_new(nodes, o);
    }
    int complete = json_array_size(w.stopped) == 0 && !w.truncated;
    out = json_pack("{s:s, s:o, s:O, s:b, s:O}", "root", epc, "nodes", nodes, "edges", w.edges, "complete", complete,
                    "stopped", w.stopped);
    if (!out)
      rc = PL_ENOMEM;
  }
  for (size_t i = 0; i < w.n; i++) {
    free(w.nodes[i].epc);
    free(w.nodes[i].location);
    free(w.nodes[i].disposition);
    json_decref(w.nodes[i].last);
  }
  free(w.nodes);
  free(w.slots);
  json_decref(w.edges);
  json_decref(w.stopped);
  if (rc_out)
    *rc_out = rc;
  return out;
}
