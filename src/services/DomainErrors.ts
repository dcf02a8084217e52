import { Schema } from "effect"

/**
 * What services fail with. They say what went wrong in the daemon's own
 * terms; only the RPC handlers turn them into wire errors (src/rpc/Errors.ts),
 * so a service never depends on the protocol's error codes.
 */

/** The request cannot be done as asked (a path outside the cell, a bad name, …); nothing changed. */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", { message: Schema.String }) {}

/** No such cell or job. */
export class UnknownEntity extends Schema.TaggedError<UnknownEntity>()("UnknownEntity", { message: Schema.String }) {}

/** The request conflicts with the current state (a name taken, a cell with running jobs). */
export class StateConflict extends Schema.TaggedError<StateConflict>()("StateConflict", { message: Schema.String }) {}

/** The sandbox cannot start and the mode says the job must not run without it. */
export class SandboxRefused
  extends Schema.TaggedError<SandboxRefused>()("SandboxRefused", { message: Schema.String })
{}

/** The daemon's host failed it (a full disk, a directory it cannot create); the message says where. */
export class DaemonFault extends Schema.TaggedError<DaemonFault>()("DaemonFault", { message: Schema.String }) {}

/** A resource limit that is not a positive whole number, or that would loosen its cell's default. */
export class LimitRejected extends Schema.TaggedError<LimitRejected>()("LimitRejected", { message: Schema.String }) {}
