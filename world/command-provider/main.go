// Command pulumi-resource-command serves `command:local:Command` for the local test world.
//
// The Go module proxy these machines reach serves no version of
// github.com/pulumi/pulumi-command/provider (every release's pseudo-version answers 403), so the
// real provider cannot be built here. This is a re-implementation of the one resource the catalog
// uses, written against the behaviour of pulumi-command v1.2.1
// (provider/pkg/provider/local/commandController.go and commandOutputs.go) and its engine
// contract. What it keeps, because the catalog's safety depends on it:
//   - only `triggers` forces a replacement; every other input change is an update, which runs
//     `update` (or `create` when `update` is unset); preview runs nothing;
//   - a failed create returns a plain error (nothing is recorded in state); a failed update keeps
//     the old state; delete runs the command and environment stored in state;
//   - the command runs as `/bin/sh -c` (or `interpreter`) in the provider's working directory (the
//     project root) or `dir`, with the provider's environment followed by `environment`;
//   - a custom timeout or a cancel kills only the direct child, with SIGKILL (exec.CommandContext);
//   - output is streamed line by line as transient status through a bufio.Scanner behind a
//     synchronous pipe: a line over 64 KiB stops the reader and blocks the command, as upstream
//     (pulumi/pulumi-command#201);
//   - stdout and stderr are stored in state with one trailing newline trimmed.
//
// What it does not do: `local.run`, `remote.*`, `assetPaths`/`archivePaths`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

var version = "1.2.1"

const commandType = "command:local:Command"

// inputKeys are the inputs of local.Command; everything else in state is an output.
var inputKeys = []resource.PropertyKey{
	"create", "update", "delete", "triggers", "environment", "dir", "interpreter", "stdin",
	"logging", "addPreviousOutputInEnv", "assetPaths", "archivePaths",
}

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
	host   *provider.HostClient
	ctx    context.Context
	cancel context.CancelFunc
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &server{host: host, ctx: ctx, cancel: cancel}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var opts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, opts)
}

func marshal(m resource.PropertyMap) (*structpb.Struct, error) { return plugin.MarshalProperties(m, opts) }

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (s *server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(`{"name":"command","version":%q}`, version)}, nil
}

func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if req.GetType() != commandType {
		return nil, fmt.Errorf("this command provider serves only %s, not %s", commandType, req.GetType())
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

// Diff: only `triggers` replaces; any other input change is an update.
func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	if len(olds) == 0 {
		if olds, err = unmarshal(req.GetOlds()); err != nil {
			return nil, err
		}
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.DiffResponse{
		Changes: pulumirpc.DiffResponse_DIFF_NONE, HasDetailedDiff: true,
		DetailedDiff: map[string]*pulumirpc.PropertyDiff{},
	}
	for _, key := range inputKeys {
		old, hadOld := olds[key]
		value, hasNew := news[key]
		if hadOld == hasNew && (!hasNew || (!value.ContainsUnknowns() && old.DeepEquals(value))) {
			continue
		}
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case !hadOld:
			kind = pulumirpc.PropertyDiff_ADD
		case !hasNew:
			kind = pulumirpc.PropertyDiff_DELETE
		}
		if key == "triggers" {
			kind += pulumirpc.PropertyDiff_ADD_REPLACE - pulumirpc.PropertyDiff_ADD
			resp.Replaces = append(resp.Replaces, string(key))
		}
		resp.Diffs = append(resp.Diffs, string(key))
		resp.DetailedDiff[string(key)] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return resp, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	urn := resource.URN(req.GetUrn())
	id, err := resource.NewUniqueHex(urn.Name(), 8, 0)
	if err != nil {
		return nil, err
	}
	state := inputs.Copy()
	if !req.GetPreview() {
		if command := text(inputs, "create"); command != "" {
			if err := s.run(ctx, urn, req.GetTimeout(), command, inputs, state); err != nil {
				return nil, err // a plain error: the engine records nothing
			}
		}
	}
	props, err := marshal(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	// A refresh changes nothing: there is nothing to read back from a command.
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	olds, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	state := news.Copy()
	for _, key := range []resource.PropertyKey{"stdout", "stderr"} {
		if value, ok := olds[key]; ok {
			state[key] = value
		}
	}
	if !req.GetPreview() {
		command := text(news, "update")
		if command == "" {
			command = text(news, "create")
		}
		if command != "" {
			if err := s.run(ctx, resource.URN(req.GetUrn()), req.GetTimeout(), command, news, state); err != nil {
				return nil, err // the engine keeps the old state
			}
		}
	}
	props, err := marshal(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	state, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	if command := text(state, "delete"); command != "" {
		if err := s.run(ctx, resource.URN(req.GetUrn()), req.GetTimeout(), command, state, state.Copy()); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.cancel()
	return &emptypb.Empty{}, nil
}

// text is a string input, unwrapped from a secret; "" when absent or not a string.
func text(m resource.PropertyMap, key resource.PropertyKey) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsString() {
		return ""
	}
	return v.StringValue()
}

// run runs command as upstream's run does and stores stdout and stderr into out.
func (s *server) run(
	rpcCtx context.Context, urn resource.URN, timeout float64, command string,
	in resource.PropertyMap, out resource.PropertyMap,
) error {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-rpcCtx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, time.Duration(timeout*float64(time.Second)))
		defer stop()
	}

	args := []string{"/bin/sh", "-c"}
	if v, ok := in["interpreter"]; ok && v.IsArray() && len(v.ArrayValue()) > 0 {
		args = args[:0]
		for _, part := range v.ArrayValue() {
			args = append(args, part.StringValue())
		}
	}
	args = append(args, command)

	var stdout, stderr, both bytes.Buffer
	var bothMu sync.Mutex
	bothWriter := writerFunc(func(p []byte) (int, error) {
		bothMu.Lock()
		defer bothMu.Unlock()
		return both.Write(p)
	})
	logReader, logWriter := io.Pipe()
	logging := text(in, "logging")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...) //nolint:gosec // running commands is the job
	outWriters := []io.Writer{&stdout, bothWriter}
	if logging == "" || logging == "stdout" || logging == "stdoutAndStderr" {
		outWriters = append(outWriters, logWriter)
	}
	errWriters := []io.Writer{&stderr, bothWriter}
	if logging == "" || logging == "stderr" || logging == "stdoutAndStderr" {
		errWriters = append(errWriters, logWriter)
	}
	cmd.Stdout = io.MultiWriter(outWriters...)
	cmd.Stderr = io.MultiWriter(errWriters...)
	if dir := text(in, "dir"); dir != "" {
		cmd.Dir = dir
	} else if wd, err := os.Getwd(); err == nil {
		cmd.Dir = wd
	} else {
		return err
	}
	cmd.Env = os.Environ()
	if env, ok := in["environment"]; ok {
		for env.IsSecret() {
			env = env.SecretValue().Element
		}
		if env.IsObject() {
			keys := env.ObjectValue().StableKeys()
			sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
			for _, k := range keys {
				cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s", k, text(env.ObjectValue(), k)))
			}
		}
	}
	if v, ok := in["addPreviousOutputInEnv"]; !ok || (v.IsBool() && v.BoolValue()) {
		if prev := text(out, "stdout"); prev != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+prev)
		}
		if prev := text(out, "stderr"); prev != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDERR="+prev)
		}
	}
	if stdin := text(in, "stdin"); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(logReader) // the default 64 KiB limit, as upstream
		for scanner.Scan() {
			_ = s.host.LogStatus(context.Background(), diag.Info, urn, scanner.Text())
		}
	}()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	logWriter.Close()
	<-done
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return fmt.Errorf("%w: running %q:\n%s", err, command, both.String())
	}
	out["stdout"] = resource.NewStringProperty(strings.TrimSuffix(stdout.String(), "\n"))
	out["stderr"] = resource.NewStringProperty(strings.TrimSuffix(stderr.String(), "\n"))
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
