// The reference servers call `app.listen(port)`, which binds every interface.
// Tests stay on loopback: pin the address to 127.0.0.1 without changing their
// start-up code.
export function bindLoopback(app) {
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, '127.0.0.1', ...rest)
}
