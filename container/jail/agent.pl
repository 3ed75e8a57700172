#!/usr/bin/perl
# The jail agent: the one long-lived program of a session's jail (bubblewrap's pid 1 runs it as pid 2). The monitor
# asks it over descriptor 5 to start commands, gets their output back from it with flow control, and signals them
# through it. Starting a command is then a fork of this small process inside a jail that already exists: no new
# namespaces, mounts or cgroup migration per command. When the agent goes, bubblewrap's init goes and the kernel
# ends every process of the jail, so nothing outlives it.
#
# Perl, because it is on every Debian-based system (perl-base is essential) and starts in milliseconds with a few
# megabytes, where a Node process needs ~70 ms of CPU and ~8 MB of private memory per session. It loads no module but
# strict: POSIX alone would add ~15 ms to every jail's start, Fcntl, warnings and constant a few more. The few
# constants it needs are Linux's (the same on x86-64 and arm64) and written out below.
# The wire format is described in agent-protocol.ts.
use strict;

sub F_GETFD () { 1 }
sub F_SETFD () { 2 }
sub F_GETFL () { 3 }
sub F_SETFL () { 4 }
sub FD_CLOEXEC () { 1 }
sub O_NONBLOCK () { 0x800 }
sub WNOHANG () { 1 }
sub FIONREAD () { 0x541B }

my $CHANNEL_FD = 5;
# setrlimit(2)'s system call number on this architecture, from the monitor (0: limits come as a shell prefix).
my $SETRLIMIT = $ARGV[0] // 0;
# The rlimits of every command of this jail (a spawn's `limits`: one session's commands all get the same), when the
# monitor passes them at start. Standbys then set them ahead and wait as shells (see become_shell).
my $PRESET_LIMITS = $ARGV[1] // "";
# Limits for setrlimit, "resource=value,..."; anything else non-empty is a shell prefix.
my $NUMERIC_LIMITS = qr/^\d+=\d+(,\d+=\d+)*$/;
my $SHELL_STANDBYS = $PRESET_LIMITS eq "" || ($SETRLIMIT && $PRESET_LIMITS =~ $NUMERIC_LIMITS);
# Output bytes sent per stream before waiting for the monitor's acks.
my $WINDOW = 256 * 1024;
my $CHUNK = 64 * 1024;
# Signals whose default action ends a process: the group leader's death is deferred (see signal_group).
# (SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM)
my %DEFERRED = map { $_ => 1 } (1, 2, 3, 10, 12, 15);
my $GRACE = 5;      # seconds
my $POLL = 0.02;    # seconds
# How young a command must be for its signals to be sent again to newcomers (see resend_to_newcomers), and for how
# long they are.
my $STARTING = 2;   # seconds

# Frame types.
sub SPAWN () { 1 }
sub SIGNAL () { 2 }
sub ACK () { 3 }
sub READY () { 10 }
sub SPAWNED () { 11 }
sub FAILED () { 12 }
sub DATA () { 13 }
sub EOF_ () { 14 }
sub EXIT () { 15 }

# Nothing the agent holds may reach a command: mark every inherited descriptor above stderr close-on-exec (Perl
# does so for the ones it opens), and drop the cgroup gate's.
for my $gate ([3, ">&="], [4, "<&="]) {    # bubblewrap writes --info-fd and reads --block-fd
    my ($fd, $mode) = @$gate;
    if (open(my $h, $mode, $fd)) {
        close $h;
    }
}
my @inherited;    # kept open: a handle going out of scope would close its descriptor
if (opendir(my $fds, "/proc/self/fd")) {
    my @numbers = grep { /^\d+$/ && $_ > 2 && $_ != fileno($fds) } readdir $fds;
    closedir $fds;
    for my $fd (@numbers) {
        next unless open(my $h, "<&=", $fd);
        my $flags = fcntl($h, F_GETFD, 0);
        fcntl($h, F_SETFD, $flags | FD_CLOEXEC) if defined $flags;
        push @inherited, $h;
    }
}
open(my $ctl, "+<&=", $CHANNEL_FD) or die "no channel on descriptor $CHANNEL_FD: $!\n";
binmode $ctl;

# SIGCHLD writes to a pipe that the main loop watches, so that no exit is missed between two selects.
pipe(my $wake_r, my $wake_w) or die "pipe: $!\n";
fcntl($wake_w, F_SETFL, fcntl($wake_w, F_GETFL, 0) | O_NONBLOCK);
$SIG{CHLD} = sub { syswrite($wake_w, "c") };
$SIG{PIPE} = "IGNORE";

my %run;       # id => { pid, out => { 1 => fh, 2 => fh }, unacked => { 1 => n, 2 => n }, exited }
my %by_pid;    # pid => id
my @timers;    # [due, code]

# Seconds, to a hundredth, from /proc/uptime (perl has no finer clock without a module): kept open and read again
# from its start, two system calls rather than the six of opening it each time. Perl opens it close-on-exec.
open(my $uptime, "<", "/proc/uptime");

sub now {
    my $text;
    return time unless $uptime && defined sysseek($uptime, 0, 0) && sysread($uptime, $text, 64);
    return (split / /, $text)[0];
}

# Writes all of $data; false when the reader is gone.
sub write_all {
    my ($fh, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($fh, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $!{EINTR};
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Frames for the monitor wait in the outbox until the end of the main loop's turn and go out in one write: each
# write wakes the monitor, and a command's end is usually several frames (end of file on both streams, exit).
my $outbox = "";

sub put {
    my ($body) = @_;
    $outbox .= pack("N", length $body) . $body;
}

sub send_outbox {
    return unless length $outbox;
    my $data = $outbox;
    $outbox = "";
    shutdown_all() unless write_all($ctl, $data);
}

sub shutdown_all {
    kill("KILL", -$_->{pid}) for values %run;
    exit 0;
}

sub fail {
    my ($id, $message) = @_;
    put(pack("CN", FAILED, $id) . $message);
}

# Each command's process is forked ahead of time, once the agent has been quiet for a moment: it prepares what every
# command gets, waits on a pipe for its command and runs it. Forking copies the agent's page tables, which is a good
# part of starting a command; the standby takes it off the command's path. A process of the jail may kill the
# standby: one that did not read all of its command (bytes left in the pipe) did not take it, and the command is
# forked on the spot.
my $standby;    # { pid, go, out, err, st, and for a shell standby unread } or undef
my $STANDBY_AFTER = 0.002;    # seconds of quiet before forking the next standby
my $STANDBY_RETRY = 1;        # seconds to wait after a standby could not be made (the jail's process limit)
my $standby_due = 0;

# Forks a process that waits for its command on `go` and runs it: the spec's length (4 bytes) then the spec, or with
# `$shell` a shell script (become_shell). Returns it, or why it cannot be made.
sub fork_child {
    my ($shell) = @_;
    my ($out_r, $out_w, $err_r, $err_w, $st_r, $st_w, $go_r, $go_w);
    return "cannot create pipes: $!"
        unless pipe($out_r, $out_w) && pipe($err_r, $err_w) && pipe($st_r, $st_w) && pipe($go_r, $go_w);
    my $pid = fork();
    return "cannot fork: $!" if !defined $pid;
    if ($pid == 0) {
        $SIG{CHLD} = "DEFAULT";
        $SIG{PIPE} = "DEFAULT";
        close $_ for ($out_r, $err_r, $st_r, $go_w, $ctl, $wake_r, $wake_w);
        prepare($out_w, $err_w);
        become_shell($go_r, $st_w) if $shell;
        # Assigning %ENV once, as a rehearsal, has perl copy the pages that takes (copy-on-write after the fork)
        # while it waits rather than on the command's path; run_command assigns the real one.
        %ENV = (SANDBOX_STANDBY => 1);
        my $length = read_exactly($go_r, 4);
        my $spec = defined $length ? read_exactly($go_r, unpack("N", $length)) : undef;
        exit 0 unless defined $spec;    # the agent is gone, or never needed it
        close $go_r;
        run_command($st_w, split(/\0/, $spec, -1));
    }
    close $_ for ($out_w, $err_w, $st_w);
    # A shell reads its script to the end of `go`: the agent closes its end once it has written, and keeps this one
    # only to count what was left unread.
    return { pid => $pid, go => $go_w, out => $out_r, err => $err_r, st => $st_r, unread => $go_r } if $shell;
    close $go_r;
    return { pid => $pid, go => $go_w, out => $out_r, err => $err_r, st => $st_r };
}

# A shell standby: it sets the jail's rlimits, empties its environment and execs /bin/sh, which reads the command's
# script (shell_script) from `go` as descriptor 3 and says on descriptor 4 why it cannot run it. That small shell then
# runs the command itself, so no exec is left on the command's path: an exec from the perl fork cost ~0.4 ms more
# (perl's memory torn down), and one more of /bin/sh ~0.7 ms. Descriptors 3 and 4 because a shell names descriptors
# by one digit. A standby that cannot become a shell ends; the command is then forked on the spot.
sub become_shell {
    my ($go_r, $st_w) = @_;
    open(my $go, "<&", $go_r) or exit 0;
    open(my $st, ">&", $st_w) or exit 0;
    close $_ for ($go_r, $st_w);
    exit 0 unless fileno($go) == 3 && fileno($st) == 4;
    fcntl($_, F_SETFD, 0) for ($go, $st);
    exit 0 if defined set_limits($PRESET_LIMITS);
    %ENV = ();
    exec { "/bin/sh" } ("/bin/sh", "-c", ". /dev/fd/3");
    exit 0;
}

# What run_command does, as the script a shell standby runs. Every value is quoted; the names are checked by start
# (fits_shell). The command is eval'd by the standby's shell: what `sh -c` would do with it (the same $0, exit
# statuses and environment), except that messages of the shell itself read "/bin/sh: 1: eval: ..." where `sh -c`
# says "/bin/sh: 1: ...". The script is one { } group, which the shell reads to its end before it runs any of it:
# run line by line, it would close descriptor 4 with the rest of a long command still in the pipe, and the agent,
# counting those bytes, would take the command for not taken and run it a second time.
sub shell_script {
    my ($command, $cwd, @env) = @_;
    my $q = sub { my ($text) = @_; $text =~ s/'/'\\''/g; return "'$text'" };
    return join("\n",
        "{",
        "[ -d " . $q->($cwd) . " ] || { printf %s " . $q->("working directory $cwd does not exist") . " >&4; exit 127; }",
        "cd -P -- " . $q->($cwd) . " 2>/dev/null || { printf %s " . $q->("cannot enter $cwd") . " >&4; exit 127; }",
        # Exactly the given environment: cd set OLDPWD, and PWD as any shell sets it.
        "unset OLDPWD",
        (@env ? "export " . join(" ", map { $q->($_) } @env) : ()),
        "exec 3<&- 4>&-",
        "eval " . $q->($command),
        "}",
        "");
}

# Whether a shell standby can run a command as given: the preset limits, and names it can export. Not IFS, OPTIND,
# PPID or PWD, which a new shell resets as it starts while the standby's shell would keep them as given.
sub fits_shell {
    my ($limits, @env) = @_;
    return 0 if $limits ne $PRESET_LIMITS;
    return !grep { !/^[A-Za-z_][A-Za-z0-9_]*=/ || /^(?:IFS|OPTIND|PPID|PWD)=/ } @env;
}

sub discard {
    my ($child) = @_;
    kill("KILL", $child->{pid});
    close $_ for grep { defined } @$child{qw(go unread out err st)};
}

# In the forked process, before its command is known: what every command gets. Its own process group, /dev/null
# for stdin, its output pipes.
sub prepare {
    my ($out_w, $err_w) = @_;
    setpgrp(0, 0);
    open(STDIN, "<", "/dev/null");
    open(STDOUT, ">&", $out_w);
    open(STDERR, ">&", $err_w);
}

# In the forked process, prepared: becomes the command, or says on the status pipe why it cannot.
sub run_command {
    my ($st_w, $command, $cwd, $limits, @env) = @_;
    if (!chdir $cwd) {
        my $why = ($!{ENOENT} || $!{ENOTDIR}) ? "working directory $cwd does not exist" : "cannot enter $cwd: $!";
        syswrite($st_w, $why);
        exit 127;
    }
    # Exactly the given environment.
    %ENV = map { split(/=/, $_, 2) } @env;
    # The rlimits are set here, after the fork, so that the agent's own CPU time never counts against them; soft
    # and hard alike, so the command cannot raise them again. They come as "resource=value,..." for setrlimit,
    # or as a shell prefix (ulimit ...; exec "$@") where the monitor knows no system call number.
    my @argv = ("/bin/sh", "-c", $command);
    if ($limits =~ $NUMERIC_LIMITS) {
        my $failed = set_limits($limits);
        if (defined $failed) {
            syswrite($st_w, "cannot set resource limit $failed: $!");
            exit 127;
        }
    } elsif (length $limits) {
        @argv = ("/bin/sh", "-c", $limits, "sh", @argv);
    }
    exec { "/bin/sh" } @argv;
    syswrite($st_w, "cannot run /bin/sh: $!");
    exit 127;
}

# Sets "resource=value,..." as soft and hard rlimits of this process; the resource it could not set (with $!), or
# undef.
sub set_limits {
    my ($limits) = @_;
    for (split /,/, $limits) {
        my ($resource, $value) = split /=/;
        return $resource unless syscall($SETRLIMIT, $resource + 0, pack("QQ", $value, $value)) == 0;
    }
    return undef;
}

# Exactly $n bytes of $fh, or undef at end of file before them.
sub read_exactly {
    my ($fh, $n) = @_;
    my $text = "";
    while (length $text < $n) {
        my $got = sysread($fh, $text, $n - length $text, length $text);
        next if !defined $got && $!{EINTR};
        return undef if !$got;
    }
    return $text;
}

# Bytes written to the pipe $fh and not read yet (FIONREAD answers on either end of a pipe); -1 when it cannot tell.
sub unread {
    my ($fh) = @_;
    my $count = pack("L", 0);
    return -1 unless ioctl($fh, FIONREAD, $count);
    return unpack("L", $count);
}

# Everything written to $fh until end of file.
sub read_all {
    my ($fh) = @_;
    my $text = "";
    while (1) {
        my $n = sysread($fh, $text, 65536, length $text);
        next if !defined $n && $!{EINTR};
        last if !$n;
    }
    return $text;
}

sub start {
    my ($id, $spec) = @_;
    my ($command, $cwd, $limits, @env) = split(/\0/, $spec, -1);
    my $child = $standby;
    $standby = undef;
    # A command a shell standby cannot run as given is forked.
    if ($child && $child->{unread} && !fits_shell($limits, @env)) {
        discard($child);
        $child = undef;
    }
    my $status;
    for (1, 2) {
        $child //= fork_child(0);
        return fail($id, $child) unless ref $child;
        my $shell = defined $child->{unread};
        my $sent = write_all($child->{go}, $shell ? shell_script($command, $cwd, @env) : pack("N", length $spec) . $spec);
        close $child->{go} if $shell;
        # The status pipe ends when the command runs (close-on-exec, or closed by the shell just before the command),
        # or says why it cannot. The process took its command if it read all of it; an end of `go` stays open until
        # then, so that what is left in it can be counted (a kernel that cannot count gets the benefit of the doubt:
        # the command runs, or is reported killed).
        $status = $sent ? read_all($child->{st}) : "";
        close $child->{st};
        my $pipe = $shell ? $child->{unread} : $child->{go};
        my $taken = $sent && unread($pipe) <= 0;
        close $pipe;
        last if $taken;
        # Gone before it took the command (a killed standby); it is reaped like any other process.
        close $child->{out};
        close $child->{err};
        $child = undef;
    }
    return fail($id, "the command's process ended before it could start") unless $child;
    my $pid = $child->{pid};
    if (length $status) {
        waitpid($pid, 0);
        close $child->{out};
        close $child->{err};
        return fail($id, $status);
    }
    $run{$id} = {
        pid => $pid, started => now(), out => { 1 => $child->{out}, 2 => $child->{err} }, unacked => { 1 => 0, 2 => 0 },
        exited => 0,
    };
    $by_pid{$pid} = $id;
    put(pack("CNN", SPAWNED, $id, $pid));
}

sub settle {
    my ($id) = @_;
    my $entry = $run{$id} or return;
    delete $run{$id} if $entry->{exited} && !%{ $entry->{out} };
}

sub reap {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        my $status = $?;
        my $id = delete $by_pid{$pid};
        next unless defined $id && $run{$id};
        $run{$id}{exited} = 1;
        # A command does not outlive itself: what it left in its group (background jobs) ends with it, and the
        # monitor is told how many were still running. The group is only listed when it is not empty.
        my $left = 0;
        if (kill(0, -$pid)) {
            my %members = group_members($pid);
            $left = keys %members;
        }
        kill("KILL", -$pid);
        my ($code, $signal) = ($status & 0x7f) == 0 ? ($status >> 8, 0) : (-1, $status & 0x7f);
        put(pack("CNl>Cn", EXIT, $id, $code, $signal, $left > 65535 ? 65535 : $left));
        settle($id);
    }
}

# The jail's processes in process group $pgid, as pid => command name (the jail's /proc shows its own pid namespace
# only).
sub group_members {
    my ($pgid) = @_;
    my %members;
    opendir(my $proc, "/proc") or return ();
    for my $name (readdir $proc) {
        next unless $name =~ /^\d+$/;
        open(my $f, "<", "/proc/$name/stat") or next;
        my $stat = do { local $/; <$f> } // next;
        # The command name may contain spaces and parentheses: fields resume after the last ")".
        my $open = index($stat, "(");
        my $close = rindex($stat, ")");
        my @fields = split / /, substr($stat, $close + 2);
        $members{$name + 0} = substr($stat, $open + 1, $close - $open - 1)
            if ($fields[2] // -1) == $pgid && $fields[0] ne "Z";
    }
    closedir $proc;
    return %members;
}

# Whether $pid has a handler for signal $signum (SigCgt in /proc/<pid>/status).
sub catches {
    my ($pid, $signum) = @_;
    open(my $f, "<", "/proc/$pid/status") or return 0;
    my $status = do { local $/; <$f> } // "";
    my ($mask) = $status =~ /^SigCgt:\s*([0-9a-f]+)$/m or return 0;
    return (hex($mask) >> ($signum - 1)) & 1;
}

# Signals a command's process group. For terminating signals one subtlety: the command is `/bin/sh -c` (the group
# leader), and its group is ended once the leader exits. A shell that dies of SIGTERM at once would cut short the
# program it runs while that program handles the same signal. So when the leader would die of the signal and has
# company, it is stopped first, the others get the signal, and the leader gets it (and SIGCONT) once they are gone
# or after a grace period: the program's handler runs to completion, and the shell cannot move on meanwhile.
sub signal_group {
    my ($entry, $signum) = @_;
    my $pgid = $entry->{pid};
    if (!$DEFERRED{$signum}) {
        kill($signum, -$pgid);
        return;
    }
    my %members = group_members($pgid);
    my @others = grep { $_ != $pgid } keys %members;
    if ($entry->{exited} || !@others || catches($pgid, $signum)) {
        kill($signum, -$pgid);
        resend_to_newcomers($entry, \%members, $signum, now() + $STARTING) if now() - $entry->{started} < $STARTING;
        return;
    }
    kill("STOP", $pgid);
    kill($signum, $_) for @others;
    my %waiting = map { $_ => 1 } @others;
    my $deadline = now() + $GRACE;
    my $release;
    $release = sub {
        return if $entry->{exited};
        my %left = group_members($pgid);
        if ((grep { $waiting{$_} } keys %left) && now() < $deadline) {
            push @timers, [now() + $POLL, $release];
            return;
        }
        kill($signum, $pgid);
        kill("CONT", $pgid);
    };
    push @timers, [now() + $POLL, $release];
}

# A command signalled as it starts can miss it. A shell that has not forked yet may catch SIGINT and then fork a
# child that never got it (and wait for it); a child forked but not yet running its program catches the signal
# with the shell's handler, then loses it when it execs. So for a command signalled within its first seconds,
# processes that join the group, or run a new program since they were signalled, get the signal too for a while.
# (Later, a group that handles the signal, say a shell running a cleanup trap, is left to do so.)
sub resend_to_newcomers {
    my ($entry, $signalled, $signum, $deadline) = @_;
    return if $entry->{exited} || now() > $deadline;
    push @timers, [now() + $POLL, sub {
        return if $entry->{exited};
        my %members = group_members($entry->{pid});
        while (my ($pid, $name) = each %members) {
            next if defined $signalled->{$pid} && $signalled->{$pid} eq $name;
            $signalled->{$pid} = $name;
            kill($signum, $pid);
        }
        resend_to_newcomers($entry, $signalled, $signum, $deadline);
    }];
}

sub dispatch {
    my ($body) = @_;
    my $type = unpack("C", $body);
    if ($type == SPAWN) {
        my ($id, $fields) = unpack("x N a*", $body);
        start($id, $fields);
    } elsif ($type == SIGNAL) {
        my ($id, $signum) = unpack("x N C", $body);
        signal_group($run{$id}, $signum) if $run{$id};
    } elsif ($type == ACK) {
        my ($id, $fd, $bytes) = unpack("x N C N", $body);
        my $entry = $run{$id} or return;
        $entry->{unacked}{$fd} = ($entry->{unacked}{$fd} // 0) - $bytes;
        $entry->{unacked}{$fd} = 0 if $entry->{unacked}{$fd} < 0;
    }
}

my $inbox = "";
put(pack("C", READY));

while (1) {
    send_outbox();
    my $rin = "";
    vec($rin, fileno($ctl), 1) = 1;
    vec($rin, fileno($wake_r), 1) = 1;
    for my $entry (values %run) {
        for my $fd (keys %{ $entry->{out} }) {
            vec($rin, fileno($entry->{out}{$fd}), 1) = 1 if $entry->{unacked}{$fd} < $WINDOW;
        }
    }
    my $timeout;
    if (@timers) {
        my $next = (sort { $a <=> $b } map { $_->[0] } @timers)[0];
        $timeout = $next - now();
        $timeout = 0 if $timeout < 0;
    }
    my $wants_standby = !$standby && now() >= $standby_due;
    $timeout = $STANDBY_AFTER if $wants_standby && (!defined $timeout || $timeout > $STANDBY_AFTER);
    my $rout;
    my $ready = select($rout = $rin, undef, undef, $timeout);
    if ($ready < 0) {
        next if $!{EINTR};
        die "select: $!\n";
    }
    if ($ready == 0 && $wants_standby) {
        my $child = fork_child($SHELL_STANDBYS);
        if (ref $child) {
            $standby = $child;
        } else {
            $standby_due = now() + $STANDBY_RETRY;
        }
    }
    if (vec($rout, fileno($wake_r), 1)) {
        sysread($wake_r, my $drain, 4096);
        reap();
    }
    if (@timers) {
        my $t = now();
        my @due = grep { $_->[0] <= $t } @timers;
        @timers = grep { $_->[0] > $t } @timers;
        $_->[1]->() for @due;
    }
    # A process's streams end as it exits, just before its parent is told: its exit is then most likely waiting
    # already, and goes out in the same write as the end of its output.
    my $ended = 0;
    for my $id (sort { $a <=> $b } keys %run) {
        my $entry = $run{$id} or next;
        # Both streams ready at once: stdout first, the order in which programs usually write.
        for my $fd (sort keys %{ $entry->{out} }) {
            my $fh = $entry->{out}{$fd};
            next unless vec($rout, fileno($fh), 1);
            my $n = sysread($fh, my $chunk, $CHUNK);
            next if !defined $n && $!{EINTR};
            if (!$n) {
                close $fh;
                delete $entry->{out}{$fd};
                put(pack("CNC", EOF_, $id, $fd));
                settle($id);
                $ended = 1;
                next;
            }
            $entry->{unacked}{$fd} += $n;
            put(pack("CNC", DATA, $id, $fd) . $chunk);
        }
    }
    reap() if $ended;
    if (vec($rout, fileno($ctl), 1)) {
        my $n = sysread($ctl, $inbox, 65536, length $inbox);
        next if !defined $n && $!{EINTR};
        # The monitor closed the channel or died: nothing may outlive it. Ending the agent ends the jail.
        shutdown_all() if !$n;
        while (length $inbox >= 4) {
            my $size = unpack("N", $inbox);
            last if length $inbox < 4 + $size;
            my $body = substr($inbox, 4, $size);
            substr($inbox, 0, 4 + $size) = "";
            dispatch($body);
        }
    }
}
