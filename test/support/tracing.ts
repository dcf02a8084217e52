import { Effect, Tracer } from "effect"

/**
 * A tracer that makes its spans as the current one does and keeps each in `made`, in the order made: for tests
 * that check which spans a piece of code opens, under which parent, and how they ended.
 */
export const recordingTracer = Effect.map(Effect.tracer, (native) => {
  const made: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (...args) => {
      const span = native.span(...args)
      made.push(span)
      return span
    },
    context: native.context
  })
  return { tracer, made }
})
