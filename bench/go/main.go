// The Go baseline of bench/hot_path and bench/herd: golang.org/x/oauth2's ReuseTokenSource, the
// token cache Go servers use, measured on this machine in the same run as the C++ library.
//
//	go_oauth2 token -goroutines G -n N [-accounts K]
//	    ReuseTokenSource.Token() on a valid token, N calls shared by G goroutines (GOMAXPROCS=G);
//	    prints "ns_per_call <aggregate wall ns / N>". With K > 1, K accounts, each its own
//	    ReuseTokenSource in a map keyed by the account's id, as a Go server with many customers
//	    keeps them: every call looks its account up, walking the accounts as bench/hot_path's
//	    "10k accounts" does (the same ids, the same stride 7919, the same starting points).
//	go_oauth2 herd -n N -token-url URL -ca FILE -client-id ID -secrets FILE -redirect-uri U
//	    (FILE, mode 0600: the client secret on its first line, the refresh token on its second;
//	    secrets never go on a command line, where every user of the machine can read them)
//	    N goroutines released at once call Token() on an expired token (the emulator refreshes
//	    it over loopback TLS, trusting only its CA); prints "wall_ms <release to the last return>",
//	    "refreshes <token requests sent>" and "errors <failed calls>".
//
// Built offline from Debian's golang-go and golang-golang-x-oauth2-dev (bench/run.sh): GOPATH
// at /usr/share/gocode, GO111MODULE=off, GOPROXY=off, GOTOOLCHAIN=local.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// staticSource hands out one token; ReuseTokenSource only calls it when its token is invalid.
type staticSource struct{ tok *oauth2.Token }

func (s staticSource) Token() (*oauth2.Token, error) { return s.tok, nil }

func benchToken(goroutines int, n int) {
	runtime.GOMAXPROCS(goroutines)
	valid := &oauth2.Token{
		AccessToken: "tok_0123456789abcdefghijklmnopqrstuvwxyzABC", // 43 characters, like Apollo's
		TokenType:   "Bearer",
		Expiry:      time.Now().Add(30 * 24 * time.Hour),
	}
	src := oauth2.ReuseTokenSource(valid, staticSource{valid})
	per := n / goroutines
	var wg sync.WaitGroup
	var sink int64
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			total := 0
			for i := 0; i < per; i++ {
				t, err := src.Token()
				if err != nil {
					panic(err)
				}
				total += len(t.AccessToken)
			}
			atomic.AddInt64(&sink, int64(total))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if sink != int64(per*goroutines*43) {
		panic("a Token() call returned the wrong token")
	}
	fmt.Printf("ns_per_call %.3f\n", float64(elapsed.Nanoseconds())/float64(per*goroutines))
}

// benchTokenAccounts is benchToken over `accounts` accounts: the lookup of the caller's account
// (a map of token sources by id) is part of every call, as it is of try_get's.
func benchTokenAccounts(goroutines int, n int, accounts int) {
	runtime.GOMAXPROCS(goroutines)
	ids := make([]string, accounts)
	sources := make(map[string]oauth2.TokenSource, accounts)
	for i := range ids {
		// 24 characters, like Apollo's ids and bench/hot_path's (make_accounts).
		ids[i] = fmt.Sprintf("5f0c1e2d3b4a59%d", 1000000000+i)
		digits := fmt.Sprint(i)
		tok := &oauth2.Token{
			AccessToken: strings.Repeat("x", 43-len(digits)) + digits, // 43 characters
			TokenType:   "Bearer",
			Expiry:      time.Now().Add(30 * 24 * time.Hour),
		}
		sources[ids[i]] = oauth2.ReuseTokenSource(tok, staticSource{tok})
	}
	per := n / goroutines
	var wg sync.WaitGroup
	var sink int64
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		// As bench/hot_path's start_index: the walks start accounts/goroutines steps apart.
		index := g * (accounts / goroutines) * 7919 % accounts
		go func(index int) {
			defer wg.Done()
			total := 0
			for i := 0; i < per; i++ {
				index = (index + 7919) % accounts
				t, err := sources[ids[index]].Token()
				if err != nil {
					panic(err)
				}
				total += len(t.AccessToken)
			}
			atomic.AddInt64(&sink, int64(total))
		}(index)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if sink != int64(per*goroutines*43) {
		panic("a Token() call returned the wrong token")
	}
	fmt.Printf("ns_per_call %.3f\n", float64(elapsed.Nanoseconds())/float64(per*goroutines))
}

// apolloTransport counts the token requests the herd sends, and adds the redirect_uri that
// Apollo requires on a refresh (x/oauth2 sends only grant_type, refresh_token and the client's
// credentials): what a Go application talking to Apollo has to do as well.
type apolloTransport struct {
	base        http.RoundTripper
	redirectURI string
	count       int64
}

func (c *apolloTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	atomic.AddInt64(&c.count, 1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	body = append(body, []byte("&redirect_uri="+url.QueryEscape(c.redirectURI))...)
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return c.base.RoundTrip(r)
}

func benchHerd(n int, tokenURL, caFile, clientID, clientSecret, redirectURI, refreshToken string) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		panic("no CA certificate in " + caFile)
	}
	transport := &apolloTransport{base: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		redirectURI: redirectURI}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: transport})
	conf := &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	expired := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Second)}
	src := conf.TokenSource(ctx, expired) // a ReuseTokenSource over the refreshing source

	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	var errors int64
	var last int64
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			if _, err := src.Token(); err != nil {
				if atomic.AddInt64(&errors, 1) == 1 {
					fmt.Fprintln(os.Stderr, "go herd: first error:", err)
				}
			}
			now := time.Now().UnixNano()
			for {
				seen := atomic.LoadInt64(&last)
				if now <= seen || atomic.CompareAndSwapInt64(&last, seen, now) {
					break
				}
			}
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	fmt.Printf("wall_ms %.3f\nrefreshes %d\nerrors %d\n", float64(last-start.UnixNano())/1e6,
		atomic.LoadInt64(&transport.count), errors)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go_oauth2 token|herd [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	goroutines := fs.Int("goroutines", 1, "goroutines (and GOMAXPROCS)")
	n := fs.Int("n", 2000000, "calls (token) or goroutines in the herd (herd)")
	tokenURL := fs.String("token-url", "", "token endpoint")
	caFile := fs.String("ca", "", "CA certificate (PEM) to trust")
	clientID := fs.String("client-id", "", "client id")
	secretsFile := fs.String("secrets", "", "file: the client secret, then the refresh token of the expired pair")
	redirectURI := fs.String("redirect-uri", "", "the client's registered redirect URI (Apollo wants it on refresh)")
	threads := fs.Int("threads", 0, "GOMAXPROCS for the herd (0: all cores)")
	accounts := fs.Int("accounts", 1, "accounts (token): each its own ReuseTokenSource, looked up by id")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "token":
		if *accounts > 1 {
			benchTokenAccounts(*goroutines, *n, *accounts)
		} else {
			benchToken(*goroutines, *n)
		}
	case "herd":
		if *threads > 0 {
			runtime.GOMAXPROCS(*threads)
		}
		secrets, err := os.ReadFile(*secretsFile)
		if err != nil {
			panic(err)
		}
		lines := strings.SplitN(string(secrets), "\n", 3)
		if len(lines) < 2 {
			panic("the secrets file needs the client secret and the refresh token, a line each")
		}
		benchHerd(*n, *tokenURL, *caFile, *clientID, lines[0], *redirectURI, lines[1])
	default:
		fmt.Fprintln(os.Stderr, "usage: go_oauth2 token|herd [flags]")
		os.Exit(2)
	}
}
