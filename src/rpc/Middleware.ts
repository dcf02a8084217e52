import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import { Context, Schema } from "effect"
import { Unauthorized } from "./Errors.js"

/** A caller's role on the daemon, ordered `read` < `run` < `admin`. */
export const Role = Schema.Literal("read", "run", "admin")
export type Role = typeof Role.Type

/**
 * Who sent the request being handled: the kernel-reported credentials of
 * its connection, read from the socket's fd when the connection was
 * accepted (never from anything the client sent), and the role the
 * daemon's policy gives them.
 */
export interface CallerShape {
  readonly uid: number
  readonly gid: number
  /** The client's pid when it connected; null where the OS does not tell. */
  readonly pid: number | null
  /** Its primary gid and supplementary groups. */
  readonly groups: ReadonlyArray<number>
  /** Null only for requests any peer may make (Version). */
  readonly role: Role | null
  /** How messages name it: `uid 1001 (alice)`. */
  readonly name: string
}

export class Caller extends Context.Tag("planter/Caller")<Caller, CallerShape>() {}

/**
 * Server-side middleware on every RPC: maps the request's connection to its
 * peer credentials, refuses with `unauthorized` a caller whose role is too
 * low (before the payload is even decoded), provides the Caller to the
 * handler, and audits. Clients need nothing for it.
 */
export class CallerMiddleware extends RpcMiddleware.Tag<CallerMiddleware>()("planter/CallerMiddleware", {
  provides: Caller,
  failure: Unauthorized,
  wrap: true
}) {}
