// ERPResilience owns the client-side resilience of a call, after the seed's "Error Handling &
// Resilience" section: the opossum-style circuit breaker, the axios-retry-style retry policy
// with full jitter, the absolute deadline budget passed from hop to hop, the token-bucket rate
// limiter a server puts in front of its clients, and `CallPolicy`, which composes the first three.
//
// Everything here decides; nothing here waits or reads the time by itself. Time comes from an
// injected `ServiceClock`, randomness from an injected `RandomSource` and waiting from an injected
// sleep closure, so the same code runs on wall time in production and on virtual time in the
// simulator, and a seed reproduces every decision.
