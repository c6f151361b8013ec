namespace Monitor.Trials;

/// <summary>A trial cannot answer: the base of the trial exceptions (smdebug's <c>smdebug.exceptions</c>).</summary>
public class TrialException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrialException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public TrialException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TrialException()
    {
    }
}

/// <summary>No tensor of that name was traced in the trial (smdebug's <c>TensorUnavailable</c>); the message lists the
/// closest names.</summary>
public sealed class TensorUnavailableException : TrialException
{
    /// <summary>Creates the exception.</summary>
    public TensorUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public TensorUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TensorUnavailableException()
    {
    }
}

/// <summary>
/// The tensor was not traced at that step (mode, rank), or what was traced cannot give the answer: no raw values, a
/// reduction the summary does not determine (smdebug's <c>TensorUnavailableForStep</c>). The message names the tensor,
/// step, mode and rank, and for a missing step the nearest traced steps.
/// </summary>
public sealed class TensorUnavailableForStepException : TrialException
{
    /// <summary>Creates the exception.</summary>
    public TensorUnavailableForStepException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public TensorUnavailableForStepException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TensorUnavailableForStepException()
    {
    }
}
