package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

const (
	// maxUploadBytes is the largest bundle churnctl sends; a larger file is refused before dialing.
	maxUploadBytes = 64 << 20
	// uploadChunkBytes is the size of one chunk message (the service takes up to 4 MiB).
	uploadChunkBytes = 1 << 20
)

func runUpload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return uploadMain(ctx, args, stdout, stderr, os.Getenv, isTerminal(stderr))
}

// isTerminal reports whether w is a terminal, the only place a progress bar is drawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// uploadMain is runUpload with an injected environment and terminal check.
func uploadMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, tty bool) int {
	const prefix = "churnctl upload"
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f adminFlags
	f.register(fs, 2*time.Minute)
	activate := fs.Bool("activate", false, "activate the version once it is stored")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none anyway when stderr is not a terminal)")
	description := fs.String("description", "", "text stored with the version (default: the manifest's description)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl upload [--addr host:port] [--token T] [--activate] [--json] [--quiet] bundle.json")
		fmt.Fprintln(stderr, "\nSends a model bundle to churnd, which validates and stores it; prints the stored version.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "%s: want one bundle file, got %d arguments\n", prefix, len(pos))
		fs.Usage()
		return 2
	}
	f.resolveToken(getenv)

	data, err := readBundleFile(pos[0])
	if err != nil {
		return failf(stderr, "%s: %v", prefix, err)
	}
	sum := sha256.Sum256(data)
	meta := &churnv1.UploadMetadata{
		Sha256:      hex.EncodeToString(sum[:]),
		SizeBytes:   int64(len(data)),
		Description: *description,
	}

	client, ctx, done, err := f.connect(ctx, stderr)
	if err != nil {
		return failf(stderr, "%s: %v", prefix, err)
	}
	defer done()

	var bar *progressbar.ProgressBar
	if tty && !*quiet {
		bar = newUploadBar(stderr, int64(len(data)))
	}
	info, err := upload(ctx, client, meta, data, bar)
	if err != nil {
		return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
	}
	if *activate {
		act, err := client.ActivateModel(ctx, &churnv1.ActivateModelRequest{Name: info.GetName(), Version: info.GetVersion()})
		if err != nil {
			fmt.Fprintf(stderr, "%s: stored %s %s, but activating it failed\n", prefix, info.GetName(), info.GetVersion())
			return failf(stderr, "%s", rpcErrorLine(prefix+" --activate", err, f.token))
		}
		info = act
	}
	if f.asJSON {
		return printJSON(stdout, stderr, prefix, info)
	}
	verb := "stored"
	if *activate {
		verb = "stored and activated"
	}
	fmt.Fprintf(stdout, "%s %s %s\n\n", verb, info.GetName(), info.GetVersion())
	printModel(stdout, info)
	return 0
}

// readBundleFile reads the bundle, refusing an empty file or one over maxUploadBytes before
// reading it whole.
func readBundleFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxUploadBytes {
		return nil, fmt.Errorf("%s: %s is over the upload limit of %s", path, humanBytes(st.Size()), humanBytes(maxUploadBytes))
	}
	// Read one byte past the limit in case the file grew since Stat.
	data, err := io.ReadAll(io.LimitReader(file, maxUploadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxUploadBytes {
		return nil, fmt.Errorf("%s: over the upload limit of %s", path, humanBytes(maxUploadBytes))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: file is empty", path)
	}
	return data, nil
}

// upload streams the metadata, then data in uploadChunkBytes chunks, advancing bar (when not nil)
// as each chunk is handed to gRPC, and returns the stored version. The bar is full once every byte
// is sent; the server validates the bundle after that.
func upload(ctx context.Context, client churnv1.ModelServiceClient, meta *churnv1.UploadMetadata, data []byte, bar *progressbar.ProgressBar) (*churnv1.ModelInfo, error) {
	stream, err := client.UploadModel(ctx)
	if err != nil {
		return nil, err
	}
	send := func(req *churnv1.UploadModelRequest) (stop bool, err error) {
		err = stream.Send(req)
		if errors.Is(err, io.EOF) {
			// The server ended the call early; its status comes with CloseAndRecv.
			return true, nil
		}
		return false, err
	}
	stop, err := send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: meta}})
	for off := 0; err == nil && !stop && off < len(data); off += uploadChunkBytes {
		end := min(off+uploadChunkBytes, len(data))
		stop, err = send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: data[off:end]}})
		if err == nil && !stop && bar != nil {
			_ = bar.Add(end - off) // drawing errors do not fail an upload
		}
	}
	if bar != nil && !bar.IsFinished() {
		_ = bar.Exit() // ends the bar's line, so that an error starts on its own
	}
	if err != nil {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// newUploadBar is a byte-counting progress bar on w that ends its line when done.
func newUploadBar(w io.Writer, size int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("uploading"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(65*time.Millisecond),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
