package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/patchbay/patchbay/internal/redact"
)

// dialNATS is the one way the commands connect to NATS: to --nats-url, with
// the authentication and TLS settings (--nats-creds, --nats-nkey, --nats-ca,
// --nats-cert and --nats-key) applied, then extra. A user and password or a
// token in the URL works as well, and a tls:// URL verifies the server with
// the system's roots unless --nats-ca names others.
//
// The files are checked before anything is dialed (see natsOptions); nats.go
// reads them again on every (re)connect, so renewed certificates and
// credentials are picked up without a restart.
func (a *app) dialNATS(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := a.natsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(append([]nats.Option{nats.Name(name)}, opts...), extra...)
	return nats.Connect(a.g.NATSURL, opts...)
}

// connectNATS connects with unlimited reconnects; the connection may start
// while NATS is down and catches up when it comes.
func (a *app) connectNATS(name string) (*nats.Conn, error) {
	log := a.logger()
	where := redact.ConnectURLs(a.g.NATSURL)
	nc, err := a.dialNATS(name,
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay()),
		nats.SetCustomDialer(keepAliveDialer()),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats disconnected", "url", where, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Retrying is right while NATS is down, but a server that
			// refuses these credentials or this TLS setup refuses them on
			// every attempt: say so, or the daemon waits silently forever.
			if refusedByNATS(err) {
				log.Warn("nats refused the connection; check --nats-url, --nats-creds, --nats-nkey, --nats-ca, --nats-cert and --nats-key", "url", where, "err", err)
			} else {
				log.Debug("nats connect failed; retrying", "url", where, "err", err)
			}
		}),
	)
	if err != nil {
		var u usage
		if errors.As(err, &u) {
			return nil, err
		}
		return nil, fmt.Errorf("nats %s: %w", where, err)
	}
	return nc, nil
}

// natsOptions returns the nats.go options of the authentication and TLS
// settings. It first reads and parses every file they name, so that a
// missing, unreadable or malformed file is one line naming the setting and
// the path (a usage error) before any connection attempt, rather than a
// failed handshake, or a daemon retrying forever.
func (a *app) natsOptions() ([]nats.Option, error) {
	g := a.g
	var opts []nats.Option
	if g.NATSCreds != "" && g.NATSNKey != "" {
		return nil, usageErrorf("--nats-creds and --nats-nkey are both set; give one: a .creds file holds its own NKey")
	}
	if (g.NATSCert == "") != (g.NATSKey == "") {
		return nil, usageErrorf("--nats-cert and --nats-key go together: give both (the client certificate and its private key) or neither")
	}
	if g.NATSCreds != "" {
		const want = "set --nats-creds to a NATS .creds file (user JWT and NKey seed)"
		data, err := readSettingFile("nats-creds", g.NATSCreds, want)
		if err != nil {
			return nil, err
		}
		jwt, _ := nkeys.ParseDecoratedJWT(data) // the whole file when it holds no decorated JWT
		_, kerr := nkeys.ParseDecoratedUserNKey(data)
		clear(data)
		switch {
		case jwt == "" || strings.ContainsAny(jwt, " \t\r\n") || strings.Count(jwt, ".") != 2:
			return nil, usageErrorf("nats-creds %s: no user JWT in it; %s", g.NATSCreds, want)
		case kerr != nil:
			return nil, usageErrorf("nats-creds %s: %w; %s", g.NATSCreds, kerr, want)
		}
		opts = append(opts, nats.UserCredentials(g.NATSCreds))
	}
	if g.NATSNKey != "" {
		const want = "set --nats-nkey to a file holding an NKey user seed (SU...)"
		data, err := readSettingFile("nats-nkey", g.NATSNKey, want)
		if err != nil {
			return nil, err
		}
		clear(data)
		opt, err := nats.NkeyOptionFromSeed(g.NATSNKey)
		if err != nil {
			return nil, usageErrorf("nats-nkey %s: %s; %s", g.NATSNKey, strings.TrimPrefix(err.Error(), "nats: "), want)
		}
		opts = append(opts, opt)
	}
	if g.NATSCA != "" {
		const want = "set --nats-ca to a PEM CA bundle"
		data, err := readSettingFile("nats-ca", g.NATSCA, want)
		if err != nil {
			return nil, err
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return nil, usageErrorf("nats-ca %s: no PEM certificate in it; %s", g.NATSCA, want)
		}
		opts = append(opts, nats.RootCAs(g.NATSCA))
	}
	if g.NATSCert != "" {
		const want = "set --nats-cert and --nats-key to a PEM client certificate and its private key"
		for _, f := range [][2]string{{"nats-cert", g.NATSCert}, {"nats-key", g.NATSKey}} {
			data, err := readSettingFile(f[0], f[1], want)
			if err != nil {
				return nil, err
			}
			clear(data)
		}
		if _, err := tls.LoadX509KeyPair(g.NATSCert, g.NATSKey); err != nil {
			return nil, usageErrorf("nats-cert %s, nats-key %s: %w; %s", g.NATSCert, g.NATSKey, err, want)
		}
		opts = append(opts, nats.ClientCert(g.NATSCert, g.NATSKey))
	}
	return opts, nil
}

// readSettingFile reads the file of a setting; its error names the setting
// and the path, and says what to do.
func readSettingFile(setting, path, want string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("%s %s: %w; %s", setting, path, err, want)
	}
	return data, nil
}

// refusedByNATS reports errors that retrying does not cure: the server
// refused the credentials, or TLS could not be agreed or verified.
func refusedByNATS(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		alert            tls.AlertError
	)
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
		errors.Is(err, nats.ErrAccountAuthExpired) || errors.Is(err, nats.ErrNkeysNotSupported) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) || errors.Is(err, nats.ErrClientCertOrRootCAsRequired) ||
		errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert)
}

// reconnectDelay backs off exponentially between attempts to reach NATS,
// from 100ms to at most 1s, jittered by half either way: events flow again
// within about a second of NATS coming back (a longer cap held a fleet
// deaf for up to 30 s), and the jitter spreads a fleet's attempts, each a
// refused TCP connection while NATS is down. nats.go calls it from its one
// reconnect goroutine, with attempts counting from 1 again after every
// successful reconnect.
const maxReconnectDelay = time.Second

func reconnectDelay() func(attempts int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, maxReconnectDelay, 0
	return func(attempts int) time.Duration {
		if attempts <= 1 {
			b.Reset()
		}
		return b.NextBackOff()
	}
}

// keepAliveDialer dials NATS with TCP keepalives that notice a link cut
// without a reset (a partition, a dropped route) in about 15 s: the
// kernel probes an idle connection after 5 s, and two probes unanswered
// 5 s apart fail it, so nats.go reconnects and the listener reads what it
// missed once the link is back. Without them the cut went unnoticed, the
// events published meanwhile were lost, and a host caught up only by
// anti-entropy or whenever TCP next retransmitted the server's close (0.4
// to 23.2 s after a 30 s partition healed, in `make chaos`). The kernel
// sends the probes: an idle listener is not woken, where NATS pings every
// 5 s cost a fleet of 100 listeners 1.2 CPU seconds a minute.
func keepAliveDialer() *net.Dialer {
	return &net.Dialer{
		Timeout:         nats.DefaultTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 2},
	}
}
