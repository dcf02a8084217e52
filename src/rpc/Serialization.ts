import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { MAX_LOG_CHUNK_BYTES } from "./Rpcs.js"

/**
 * The largest request frame the daemon takes; a larger one closes that
 * connection. Requests hold an argv and env (the kernel caps a command line
 * at about 2 MiB), so anything beyond is garbage or abuse. Kept tight because
 * the msgpack reader re-copies a partial frame on every read: its memory grows
 * with the square of the frame size.
 */
export const MAX_REQUEST_FRAME_BYTES = 3 * 1024 * 1024

/** The largest response frame a client takes: a full log chunk plus its envelope. */
export const MAX_RESPONSE_FRAME_BYTES = MAX_LOG_CHUNK_BYTES + 1024 * 1024

/** msgpack on the daemon's side of the socket. */
export const ServerSerializationLive = RpcSerialization.layerMsgPackWith({ useRecords: true, maxBufferSize: MAX_REQUEST_FRAME_BYTES })

/** msgpack on a client's side of the socket. */
export const ClientSerializationLive = RpcSerialization.layerMsgPackWith({ useRecords: true, maxBufferSize: MAX_RESPONSE_FRAME_BYTES })
