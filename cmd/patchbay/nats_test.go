package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// natsEnv are the environment variables of the NATS settings; the tests
// clear them so that the environment of the test run cannot leak in.
var natsEnv = []string{"PATCHBAY_NATS_CREDS", "NATS_CREDS", "PATCHBAY_NATS_NKEY", "PATCHBAY_NATS_CA", "PATCHBAY_NATS_CERT", "PATCHBAY_NATS_KEY", "PATCHBAY_NATS_URL", "NATS_URL", "PATCHBAY_CONFIG"}

func clearNATSEnv(t *testing.T) {
	t.Helper()
	for _, k := range natsEnv {
		t.Setenv(k, "") // empty is unset to viper
	}
}

// testPKI is a CA made for one test and the certificates it issued, as
// PEM files in dir.
type testPKI struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	CAFile string
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), serial: 1}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "patchbay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if p.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.key = key
	p.CAFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", der)
	return p
}

// issue makes a certificate for 127.0.0.1 and localhost, for a server or a
// client, and returns its certificate and key files.
func (p *testPKI) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, p.dir, name+".pem", "CERTIFICATE", der), writePEM(t, p.dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNATSWith starts an embedded NATS server with opts on a free
// loopback port and stops it when the test ends.
func startNATSWith(t *testing.T, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", natsserver.RANDOM_PORT, true, true
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go srv.Start() // returns at once; Shutdown ends the server's goroutines
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready within 10s")
	}
	return srv
}

// natsHost is host:port of a server, for URLs of any scheme.
func natsHost(srv *natsserver.Server) string { return srv.Addr().String() }

// natsSecrets are the credentials the tests' servers accept, as files.
type natsSecrets struct {
	pki                   *testPKI
	serverCert, serverKey string
	clientCert, clientKey string
	seed, creds           string // NKey seed file, .creds file
}

// authServers starts one NATS server for each way of authenticating, and
// returns them with the files a client needs.
func authServers(t *testing.T) (map[string]*natsserver.Server, *natsSecrets) {
	t.Helper()
	s := &natsSecrets{pki: newTestPKI(t)}
	s.serverCert, s.serverKey = s.pki.issue(t, "server", x509.ExtKeyUsageServerAuth)
	s.clientCert, s.clientKey = s.pki.issue(t, "client", x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()

	serverTLS, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: s.serverCert, KeyFile: s.serverKey})
	if err != nil {
		t.Fatal(err)
	}
	mutualTLS, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: s.serverCert, KeyFile: s.serverKey, CaFile: s.pki.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}

	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	s.seed = writeFile(t, dir, "user.nk", string(seed)+"\n")

	// Decentralized JWT auth: an operator, an account and a user of it.
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	if _, err := opClaims.Encode(op); err != nil {
		t.Fatal(err)
	}
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	accounts := &natsserver.MemAccResolver{}
	if err := accounts.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	jwtUser, _ := nkeys.CreateUser()
	jwtUserPub, _ := jwtUser.PublicKey()
	jwtUserSeed, _ := jwtUser.Seed()
	userJWT, err := jwt.NewUserClaims(jwtUserPub).Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, jwtUserSeed)
	if err != nil {
		t.Fatal(err)
	}
	s.creds = writeFile(t, dir, "user.creds", string(creds))

	return map[string]*natsserver.Server{
		"tls":      startNATSWith(t, &natsserver.Options{TLSConfig: serverTLS, TLSTimeout: 5}),
		"mtls":     startNATSWith(t, &natsserver.Options{TLSConfig: mutualTLS, TLSVerify: true, TLSTimeout: 5}),
		"nkey":     startNATSWith(t, &natsserver.Options{Nkeys: []*natsserver.NkeyUser{{Nkey: pub}}}),
		"password": startNATSWith(t, &natsserver.Options{Username: "patchbay", Password: "s3cret-pw"}),
		"creds":    startNATSWith(t, &natsserver.Options{TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: accounts}),
	}, s
}

// subscriberOptions are how the test itself connects to each server, with
// nats.go's options directly.
func (s *natsSecrets) subscriberOptions(t *testing.T, server string) []nats.Option {
	t.Helper()
	switch server {
	case "tls":
		return []nats.Option{nats.RootCAs(s.pki.CAFile)}
	case "mtls":
		return []nats.Option{nats.RootCAs(s.pki.CAFile), nats.ClientCert(s.clientCert, s.clientKey)}
	case "nkey":
		opt, err := nats.NkeyOptionFromSeed(s.seed)
		if err != nil {
			t.Fatal(err)
		}
		return []nats.Option{opt}
	case "password":
		return []nats.Option{nats.UserInfo("patchbay", "s3cret-pw")}
	case "creds":
		return []nats.Option{nats.UserCredentials(s.creds)}
	}
	t.Fatalf("no server %q", server)
	return nil
}

// TestNATSAuthTLS drives `patchbay rollout resume`, whose one-shot
// announcement goes through the same dialNATS as the daemons, against real
// servers that require TLS, mutual TLS, an NKey, a password or a .creds
// file: the announcement reaches the server exactly when the settings
// match what the server requires.
func TestNATSAuthTLS(t *testing.T) {
	clearNATSEnv(t)
	consul := testcluster.StartConsul(t)
	servers, sec := authServers(t)
	addr := "--consul-addr=" + consul.Addr
	host := func(server string) string { return natsHost(servers[server]) }
	configFile := writeFile(t, t.TempDir(), "patchbay.yaml", "nats-ca: "+sec.pki.CAFile+"\n")

	tests := []struct {
		name     string
		server   string
		url      string // --nats-url
		args     []string
		env      map[string]string
		announce bool   // the server got the announcement
		warning  string // on stderr when it did not
	}{
		{"tls: --nats-ca, plain nats:// URL", "tls", "nats://" + host("tls"), []string{"--nats-ca", sec.pki.CAFile}, nil, true, ""},
		{"tls: --nats-ca, tls:// URL", "tls", "tls://" + host("tls"), []string{"--nats-ca", sec.pki.CAFile}, nil, true, ""},
		{"tls: $PATCHBAY_NATS_CA", "tls", "nats://" + host("tls"), nil, map[string]string{"PATCHBAY_NATS_CA": sec.pki.CAFile}, true, ""},
		{"tls: nats-ca in the config file", "tls", "nats://" + host("tls"), []string{"--config", configFile}, nil, true, ""},
		{"tls: system roots do not know the CA", "tls", "tls://" + host("tls"), nil, nil, false, "x509: certificate signed by unknown authority"},
		{"mtls: certificate and key", "mtls", "nats://" + host("mtls"), []string{"--nats-ca", sec.pki.CAFile, "--nats-cert", sec.clientCert, "--nats-key", sec.clientKey}, nil, true, ""},
		{"mtls: from the environment", "mtls", "nats://" + host("mtls"), nil, map[string]string{"PATCHBAY_NATS_CA": sec.pki.CAFile, "PATCHBAY_NATS_CERT": sec.clientCert, "PATCHBAY_NATS_KEY": sec.clientKey}, true, ""},
		{"mtls: no client certificate", "mtls", "nats://" + host("mtls"), []string{"--nats-ca", sec.pki.CAFile}, nil, false, "cannot announce on nats"},
		{"nkey: --nats-nkey", "nkey", "nats://" + host("nkey"), []string{"--nats-nkey", sec.seed}, nil, true, ""},
		{"nkey: $PATCHBAY_NATS_NKEY", "nkey", "nats://" + host("nkey"), nil, map[string]string{"PATCHBAY_NATS_NKEY": sec.seed}, true, ""},
		{"nkey: no seed", "nkey", "nats://" + host("nkey"), nil, nil, false, "Authorization Violation"},
		{"password in the URL", "password", "nats://patchbay:s3cret-pw@" + host("password"), nil, nil, true, ""},
		{"wrong password in the URL", "password", "nats://patchbay:wrong-pw@" + host("password"), nil, nil, false, "Authorization Violation"},
		{"creds: --nats-creds", "creds", "nats://" + host("creds"), []string{"--nats-creds", sec.creds}, nil, true, ""},
		{"creds: $NATS_CREDS", "creds", "nats://" + host("creds"), nil, map[string]string{"NATS_CREDS": sec.creds}, true, ""},
		{"creds: none", "creds", "nats://" + host("creds"), nil, nil, false, "Authorization Violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			reg, prefix := testRegistry(t, consul)
			halt(t, reg, "default", "www", registry.Halt{Node: "web-2", Reason: "health check failed", At: time.Now()})

			sub, err := nats.Connect(servers[tt.server].ClientURL(), sec.subscriberOptions(t, tt.server)...)
			if err != nil {
				t.Fatalf("test subscriber: %v", err)
			}
			defer sub.Close()
			msgs, err := sub.SubscribeSync(events.RolloutSubject("default", "www"))
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Flush(); err != nil { // the server knows the subscription before the command publishes
				t.Fatal(err)
			}

			args := append([]string{addr, prefix, "--nats-url", tt.url, "rollout", "resume", "www"}, tt.args...)
			code, stdout, stderr := patchbay(t, args...)
			if code != 0 || !strings.Contains(stdout, "resumed rollout group www") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			switch {
			case tt.announce && stderr != "":
				t.Fatalf("unexpected stderr:\n%s", stderr)
			case !tt.announce && (!strings.Contains(stderr, "warning: cannot announce on nats at") || !strings.Contains(stderr, tt.warning)):
				t.Fatalf("stderr lacks %q:\n%s", tt.warning, stderr)
			case strings.Contains(stderr, "-pw"):
				t.Fatalf("stderr shows the password:\n%s", stderr)
			}

			// The command flushed its publish before it returned; a marker
			// published now arrives after it, so nothing waits for an
			// event that may not come.
			if err := sub.Publish(msgs.Subject, []byte("marker")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for len(got) == 0 || got[len(got)-1] != "marker" {
				msg, err := msgs.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("messages so far %q: %v", got, err)
				}
				got = append(got, string(msg.Data))
			}
			if want := map[bool][]string{true: {"", "marker"}, false: {"marker"}}[tt.announce]; !slices.Equal(got, want) {
				t.Fatalf("messages on %s: %q, want %q", msgs.Subject, got, want)
			}
		})
	}
}

// TestNATSDaemonConnection checks connectNATS, the daemons' connection with
// unlimited reconnects, with settings resolved by loadGlobals: it delivers
// with the right NKey, and without it keeps retrying but says why.
func TestNATSDaemonConnection(t *testing.T) {
	clearNATSEnv(t)
	servers, sec := authServers(t)
	srv := servers["nkey"]
	sub, err := nats.Connect(srv.ClientURL(), sec.subscriberOptions(t, "nkey")...)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	tests := []struct {
		name      string
		args      []string
		connected bool
		log       string // on stderr, eventually
	}{
		{"nkey seed", []string{"--nats-nkey", sec.seed}, true, ""},
		{"no nkey seed", nil, false, "nats refused the connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr syncBuffer
			a := newApp(new(bytes.Buffer), &stderr)
			root := a.rootCmd()
			var nc *nats.Conn
			root.AddCommand(&cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error {
				var err error
				nc, err = a.connectNATS("patchbay test " + tt.name)
				return err
			}})
			root.SetArgs(append([]string{"--nats-url", srv.ClientURL(), "probe"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err) // retrying on failure, the daemons' connection does not fail
			}
			defer nc.Close()
			if !tt.connected {
				testcluster.Eventually(t, 10*time.Second, "a log line "+strconv.Quote(tt.log), func() bool { return strings.Contains(stderr.String(), tt.log) })
				if nc.IsConnected() || !strings.Contains(stderr.String(), "Authorization Violation") {
					t.Fatalf("connected %v\nstderr:\n%s", nc.IsConnected(), stderr.String())
				}
				return
			}
			msgs, err := sub.SubscribeSync("patchbay.test")
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish("patchbay.test", []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if err := nc.FlushTimeout(10 * time.Second); err != nil {
				t.Fatalf("flush: %v\nstderr:\n%s", err, stderr.String())
			}
			if msg, err := msgs.NextMsg(5 * time.Second); err != nil || string(msg.Data) != "hello" {
				t.Fatalf("message %v, %v", msg, err)
			}
		})
	}
}

// TestNATSSettingErrors: a NATS setting that cannot work is one line naming
// the setting and the path, exit 1, before anything is dialed: Consul at
// 127.0.0.1:1 would otherwise be exit 2, and rollout resume would have
// cleared the halt first.
func TestNATSSettingErrors(t *testing.T) {
	clearNATSEnv(t)
	pki := newTestPKI(t)
	cert, key := pki.issue(t, "client", x509.ExtKeyUsageClientAuth)
	_, otherKey := pki.issue(t, "other", x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := writeFile(t, dir, "garbage.txt", "not a certificate\n")
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	seedFile := writeFile(t, dir, "user.nk", string(seed)+"\n")
	acct, _ := nkeys.CreateAccount()
	acctSeed, _ := acct.Seed()
	acctSeedFile := writeFile(t, dir, "account.nk", string(acctSeed)+"\n")
	seedOnly := writeFile(t, dir, "seed-only.creds", "-----BEGIN USER NKEY SEED-----\n"+string(seed)+"\n------END USER NKEY SEED------\n")
	listenerYAML := writeFile(t, dir, "listener.yaml", "nats-ca: "+missing+"\nconsul-addr: 127.0.0.1:1\nnode: web-1\naddress: 127.0.0.1\nstate_dir: "+dir+"\nservices:\n  - service: app\n")

	noConsul := []string{"--consul-addr=127.0.0.1:1", "--timeout=2s"}
	resume := func(flags ...string) []string {
		return append(append(slices.Clone(noConsul), "rollout", "resume", "www"), flags...)
	}
	tests := []struct {
		name string
		args []string
		want string // all of stderr but "patchbay: " and the newline
	}{
		{"missing CA", resume("--nats-ca", missing),
			"nats-ca " + missing + ": open " + missing + ": no such file or directory; set --nats-ca to a PEM CA bundle"},
		{"CA is no PEM", resume("--nats-ca", garbage),
			"nats-ca " + garbage + ": no PEM certificate in it; set --nats-ca to a PEM CA bundle"},
		{"seed file is a directory", resume("--nats-nkey", dir),
			"nats-nkey " + dir + ": read " + dir + ": is a directory; set --nats-nkey to a file holding an NKey user seed (SU...)"},
		{"seed of an account", resume("--nats-nkey", acctSeedFile),
			"nats-nkey " + acctSeedFile + ": Not a valid nkey user seed; set --nats-nkey to a file holding an NKey user seed (SU...)"},
		{"missing creds", resume("--nats-creds", missing),
			"nats-creds " + missing + ": open " + missing + ": no such file or directory; set --nats-creds to a NATS .creds file (user JWT and NKey seed)"},
		{"creds without a JWT", resume("--nats-creds", seedOnly),
			"nats-creds " + seedOnly + ": no user JWT in it; set --nats-creds to a NATS .creds file (user JWT and NKey seed)"},
		{"creds and nkey", resume("--nats-creds", seedOnly, "--nats-nkey", seedFile),
			"--nats-creds and --nats-nkey are both set; give one: a .creds file holds its own NKey"},
		{"cert without key", resume("--nats-cert", cert),
			"--nats-cert and --nats-key go together: give both (the client certificate and its private key) or neither"},
		{"key without cert", resume("--nats-key", key),
			"--nats-cert and --nats-key go together: give both (the client certificate and its private key) or neither"},
		{"missing key", resume("--nats-cert", cert, "--nats-key", missing),
			"nats-key " + missing + ": open " + missing + ": no such file or directory; set --nats-cert and --nats-key to a PEM client certificate and its private key"},
		{"key of another certificate", resume("--nats-cert", cert, "--nats-key", otherKey),
			"nats-cert " + cert + ", nats-key " + otherKey + ": tls: private key does not match public key; set --nats-cert and --nats-key to a PEM client certificate and its private key"},
		{"resolver daemon", append(slices.Clone(noConsul), "resolver", "--nats-creds", missing),
			"nats-creds " + missing + ": open " + missing + ": no such file or directory; set --nats-creds to a NATS .creds file (user JWT and NKey seed)"},
		{"listen daemon, setting in listener.yaml", []string{"listen", "--config", listenerYAML},
			"nats-ca " + missing + ": open " + missing + ": no such file or directory; set --nats-ca to a PEM CA bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != exitUser || stderr != "patchbay: "+tt.want+"\n" || stdout != "" {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant stderr:\npatchbay: %s", code, exitUser, stdout, stderr, tt.want)
			}
		})
	}
}

// TestNATSSettingsInListenerYAML: listener.yaml may hold the NATS settings,
// like the other globals, for `patchbay listen` (which checks its keys
// against the listener's own) and for every other command.
func TestNATSSettingsInListenerYAML(t *testing.T) {
	clearNATSEnv(t)
	dir := t.TempDir()
	doc := "nats-url: tls://nats.internal:4222\nnats-creds: /etc/patchbay/nats.creds\nnats-nkey: /etc/patchbay/nats.nk\n" +
		"nats-ca: /etc/patchbay/nats-ca.pem\nnats-cert: /etc/patchbay/nats.pem\nnats-key: /etc/patchbay/nats-key.pem\n" +
		"node: web-1\naddress: 127.0.0.1\nstate_dir: " + dir + "\nservices:\n  - service: app\n"
	path := writeFile(t, dir, "listener.yaml", doc)
	want := globals{
		NATSURL: "tls://nats.internal:4222", NATSCreds: "/etc/patchbay/nats.creds", NATSNKey: "/etc/patchbay/nats.nk",
		NATSCA: "/etc/patchbay/nats-ca.pem", NATSCert: "/etc/patchbay/nats.pem", NATSKey: "/etc/patchbay/nats-key.pem",
	}
	for _, listenerFile := range []bool{true, false} {
		t.Run("listener.yaml loader "+strconv.FormatBool(listenerFile), func(t *testing.T) {
			a := newApp(new(bytes.Buffer), new(bytes.Buffer))
			root := a.rootCmd()
			var got globals
			probe := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error {
				if _, err := a.loadListenerConfig(); err != nil {
					return err
				}
				got = a.g
				return nil
			}}
			if listenerFile {
				probe.Annotations = map[string]string{configAnnotation: configListener}
			}
			root.AddCommand(probe)
			root.SetArgs([]string{"--config", path, "probe"})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if got.NATSURL != want.NATSURL || got.NATSCreds != want.NATSCreds || got.NATSNKey != want.NATSNKey ||
				got.NATSCA != want.NATSCA || got.NATSCert != want.NATSCert || got.NATSKey != want.NATSKey {
				t.Fatalf("globals = %+v", got)
			}
		})
	}
}

// A fleet waiting for NATS retries at most about a second apart, so events
// flow again within a second or two of NATS coming back (the cap was 30 s).
func TestReconnectDelayIsCapped(t *testing.T) {
	next := reconnectDelay()
	var longest time.Duration
	for attempt := 1; attempt <= 60; attempt++ {
		d := next(attempt)
		if d <= 0 {
			t.Fatalf("attempt %d: delay %s", attempt, d)
		}
		longest = max(longest, d)
	}
	// backoff's jitter spreads each delay by half either way.
	if longest > maxReconnectDelay*3/2 || longest < maxReconnectDelay/2 {
		t.Fatalf("longest delay over 60 attempts = %s, want about %s", longest, maxReconnectDelay)
	}
	if first := reconnectDelay()(1); first > 150*time.Millisecond {
		t.Fatalf("first delay %s, want about 100ms", first)
	}
}
