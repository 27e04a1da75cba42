"""The pure core: decisions and vocabulary as functions of data. Nothing here touches the network."""
