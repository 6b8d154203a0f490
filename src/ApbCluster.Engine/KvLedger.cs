namespace ApbCluster.Engine;

/// <summary>
/// A host's KV held by every running query: device bytes (the GPU, or the CPU on a CPU run) and host bytes (ShadowKV's
/// values moved off the device). Each query holds its own share through one <see cref="Hold"/>, which it may change as
/// its KV changes form (the full shard after prefill, then its ShadowKV store) and gives back when it ends; the totals
/// are always the sum over the queries running. Thread-safe: the queries run on their own threads.
/// </summary>
public sealed class KvLedger
{
    private long _device;
    private long _host;

    public long DeviceBytes => Interlocked.Read(ref _device);

    public long HostBytes => Interlocked.Read(ref _host);

    /// <summary>A query's share, 0 until it sets one.</summary>
    public Hold Open() => new(this);

    public sealed class Hold : IDisposable
    {
        private readonly KvLedger _ledger;
        private readonly Lock _lock = new();
        private long _device;
        private long _host;
        private bool _closed;

        internal Hold(KvLedger ledger) => _ledger = ledger;

        public long DeviceBytes => Interlocked.Read(ref _device);

        public long HostBytes => Interlocked.Read(ref _host);

        /// <summary>Replaces this query's share by (<paramref name="device"/>, <paramref name="host"/>); ignored once
        /// given back (a late callback must not count a query that ended).</summary>
        public void Set(long device, long host)
        {
            lock (_lock)
            {
                if (_closed) return;
                Interlocked.Add(ref _ledger._device, device - _device);
                Interlocked.Add(ref _ledger._host, host - _host);
                Interlocked.Exchange(ref _device, device);
                Interlocked.Exchange(ref _host, host);
            }
        }

        /// <summary>Gives the share back.</summary>
        public void Dispose()
        {
            lock (_lock)
            {
                if (_closed) return;
                Interlocked.Add(ref _ledger._device, -_device);
                Interlocked.Add(ref _ledger._host, -_host);
                _device = _host = 0;
                _closed = true;
            }
        }
    }
}
