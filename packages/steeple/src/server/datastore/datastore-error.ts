/**
 * The one error class of the server datastore. Callers branch on `code`, never on the
 * message; the API layer maps each code to a gRPC status. Messages name the record and
 * the rule broken, and never carry join tokens or connection-string passwords.
 * Misuse by the programmer (a negative page size, a sequence outside 64 bits) stays a
 * `TypeError` or `RangeError`.
 * @module
 */

export type DatastoreErrorCode =
  | 'ERR_ENTRY_DUPLICATE'
  | 'ERR_ENTRY_NOT_FOUND'
  | 'ERR_AGENT_EXISTS'
  | 'ERR_AGENT_NOT_FOUND'
  | 'ERR_JOIN_TOKEN_EXISTS'
  | 'ERR_BUNDLE_NOT_FOUND'
  | 'ERR_BUNDLE_IN_USE'
  | 'ERR_FEDERATION_RELATIONSHIP_EXISTS'
  | 'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND'
  | 'ERR_REVISION_OUT_OF_RANGE'
  | 'ERR_DATASTORE_UNAVAILABLE'
  | 'ERR_DATASTORE_SCHEMA_TOO_NEW';

/** A datastore operation was refused or could not reach the database. */
export class DatastoreError extends Error {
  readonly code: DatastoreErrorCode;
  /** For ERR_ENTRY_DUPLICATE: the id of the entry with the same SPIFFE ID, parent and selectors. */
  readonly existingEntryId: string | undefined;

  constructor(code: DatastoreErrorCode, message: string, options?: ErrorOptions & { existingEntryId?: string }) {
    super(message, options);
    this.name = 'DatastoreError';
    this.code = code;
    this.existingEntryId = options?.existingEntryId;
  }
}

/** Shortens a value for an error message so that huge inputs do not flood logs. */
export function quote(value: string, max = 120): string {
  const shown = value.length > max ? `${value.slice(0, max)}…(${value.length} chars)` : value;
  return JSON.stringify(shown);
}

/** True when `err` is a {@link DatastoreError}, optionally with the given code. */
export function isDatastoreError(err: unknown, code?: DatastoreErrorCode): err is DatastoreError {
  return err instanceof DatastoreError && (code === undefined || err.code === code);
}
