package listener

// WithRunHook has fn called after every provision run, from the run's
// goroutine: the external tests wait on it for a run to end. Only tests
// need it, so it is compiled only into them.
func WithRunHook(fn func(RunReport)) Option { return func(l *Listener) { l.onRun = fn } }
