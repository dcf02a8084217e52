import * as RpcSerialization from "@effect/rpc/RpcSerialization"

/**
 * Frames above this size are refused and the connection closed: requests
 * are small (argv, env), so a larger frame is garbage or abuse, and must not
 * make the daemon buffer without bound.
 */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024

/** msgpack on both ends of the socket. */
export const SerializationLive = RpcSerialization.layerMsgPackWith({ useRecords: true, maxBufferSize: MAX_FRAME_BYTES })
