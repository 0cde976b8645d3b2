/* Internals shared by the files of the identifier registry (registry.c, registry_values.c,
 * registry_bulk.c): the checks of reserved value types, the GS1 key of a value, and the steps of
 * writing one identifier that single writes and bulk registration both take. Not for other
 * modules: their interface is ident.h. */
#ifndef PLATEAU_IDENT_INT_H
#define PLATEAU_IDENT_INT_H

#include "ident/ident.h"

#include <stddef.h>
#include <stdint.h>

/* -- values (registry_values.c) -- */

/* Whether a value type is reserved (HS_*, URL, EMAIL, DESC, GS1 and the GS1 vocabulary). */
int ident__is_reserved(const char *type);
/* Checks the data of the reserved types whose syntax Plateau knows; index names the value in
 * the message. 0, or < 0 with a message in err. */
int ident__check_reserved(const char *type, hdl_str data, uint32_t index, pl_err *err);
/* The GS1 index key of a GS1 value: a Digital Link URI or path whose last qualifier may be a
 * template ("/01/09506000134376/21/{serialnumber}", standing for every value of it), written
 * into key (for a template, the key path of the other qualifiers, then "/21/" and "*"). */
int ident__gs1_value_key(const uint8_t *p, size_t n, char *key, size_t keysz, pl_err *err);

/* -- audit and writing one identifier (registry.c) -- */

/* Appends an audit record of an action when the context has an audit log (detail_ok is the
 * detail recorded on success); a failure to append is logged and returned. */
int ident__audit(ident_ctx *c, int64_t tenant_id, const char *action, const char *target, int rc,
                 const pl_err *err, const char *detail_ok);
/* The handle's prefix into *out: held by this node (else PL_ENOTFOUND) and the tenant's (else
 * PL_EPERM). */
int ident__check_owner(store *db, int64_t tenant_id, const char *handle, size_t len,
                       store_prefix *out, pl_err *err);
/* The fields of the tenant's template called name into *fields (malloc'd; the caller frees),
 * NULL when name is NULL or empty; PL_EINVAL when there is no such template. */
int ident__load_template(store *db, int64_t tenant_id, const char *name, char **fields,
                         pl_err *err);
/* Validates (against template_fields when given) and writes one identifier with its encoded
 * values and GS1 keys inside the caller's transaction, as mode (IDENT_PUT_*) says; *created
 * tells whether it was new. A row it inserted and then rejected is deleted again, so that a bulk
 * registration can go on in the same transaction. */
int ident__put_one(store *db, int64_t tenant_id, const store_prefix *prefix, const char *handle,
                   const char *template_fields, const char *template_name, const uint8_t *enc,
                   size_t enc_len, uint32_t nvalues, int mode, int *created, pl_err *err);

#endif
